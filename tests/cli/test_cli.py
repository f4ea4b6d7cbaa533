"""The command line, as the issue's acceptance describes it (run as real processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from spooler.core.jobs import Jobs
from spooler.core.pause import read_pause
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job
from tests.fakes import Clock, RecordingLab


def labspool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spooler.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_init_submit_run_once_status(tmp_path: Path) -> None:
    init = labspool("init", str(tmp_path / "x"))
    assert init.returncode == 0, init.stderr
    config = init.stdout.strip().splitlines()[-1]
    assert Path(config).is_file()
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(good_job(experiments=2)))
    bad.write_text(
        json.dumps(
            {"experiment_0": {"instructions": [["rlx", [0], [7.1]]], "num_wires": 1, "shots": 3}}
        )
    )
    submitted = [labspool("--config", config, "submit", str(p)) for p in (good, bad)]
    assert all(s.returncode == 0 for s in submitted)
    good_id, bad_id = (s.stdout.strip() for s in submitted)
    run = labspool("--config", config, "run", "--once")
    assert run.returncode == 0, run.stderr
    status = labspool("status", "--json", env={"LABSPOOL_CONFIG": config})
    documents = {d["job_id"]: d for d in json.loads(status.stdout)}
    assert documents[good_id]["status"] == "QUEUED"
    assert "Waiting for the machine: lab: no lab is configured" in documents[good_id]["detail"]
    assert documents[bad_id]["status"] == "ERROR"
    assert documents[bad_id]["error_message"] == (
        "experiment_0.instructions[0]: parameter 7.1 of rlx is above the maximum 6.2832"
    )
    jobs = Path(config).parent / "jobs" / good_id
    assert sorted(p.name for p in jobs.iterdir()) == [
        "experiment_0.py",
        "experiment_1.py",
        "job.json",
    ]
    table = labspool("--config", config, "status")
    assert good_id in table.stdout and "QUEUED" in table.stdout and "0/6" in table.stdout


def test_paths_json(run_cli: Callable[..., tuple[int, str, str]], tree: Settings) -> None:
    code, out, _ = run_cli("--config", str(tree.path), "paths", "--json")
    paths = json.loads(out)
    assert code == 0
    for key in ("dump", "status", "results", "shots", "addresses", "sds", "config"):
        assert Path(paths[key]).exists()
    assert paths["dump"] == str(tree.folders.dump)


def test_validate_exit_codes(
    run_cli: Callable[..., tuple[int, str, str]], tree: Settings, tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(good_job()))
    assert run_cli("--config", str(tree.path), "validate", str(good))[0] == 0
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"experiment_0": {"instructions": [["rlx",[0],[NaN]]], "num_wires": 1, "shots": 3}}'
    )
    code, _, err = run_cli("--config", str(tree.path), "validate", str(bad))
    assert code == 1 and "NaN is not allowed" in err
    code, _, err = run_cli("--config", str(tree.path), "validate", str(good), "--id", "../etc")
    assert code == 1 and "not a valid job id" in err
    assert not any(tree.folders.dump.iterdir()), "validate never submits"


def test_submit_refuses_a_bad_or_used_id(
    run_cli: Callable[..., tuple[int, str, str]], tree: Settings, tmp_path: Path
) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps(good_job()))
    assert run_cli("--config", str(tree.path), "submit", str(job), "--id", "../../x")[0] == 2
    assert (
        run_cli("--config", str(tree.path), "submit", str(job), "--id", "abc")[1].strip() == "abc"
    )
    code, _, err = run_cli("--config", str(tree.path), "submit", str(job), "--id", "abc")
    assert code == 2 and "already used" in err
    assert sorted(p.name for p in tree.folders.dump.iterdir()) == ["abc.json"]
    assert not any(tree.folders.staging.iterdir())


def test_missing_config_is_a_clear_error(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = run_cli("paths")
    assert code == 2 and "LABSPOOL_CONFIG" in err


def test_schema_prints_the_backend_schema(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = run_cli("schema", "nali")
    assert code == 0 and json.loads(out)["maxProperties"] == 3


def test_submit_of_a_file_in_the_staging_folder_keeps_it(
    run_cli: Callable[..., tuple[int, str, str]], tree: Settings
) -> None:
    source = tree.folders.staging / "mine.json"
    source.write_text(json.dumps(good_job()))
    assert run_cli("--config", str(tree.path), "submit", str(source), "--id", "mine")[0] == 0
    assert source.exists()
    assert (tree.folders.dump / "mine.json").read_text() == source.read_text()


def test_queue_commands_say_what_they_did_and_refuse_nonsense(
    tree: Settings, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    config = str(tree.path)
    code, _, err = run_cli("--config", config, "cancel", "x")
    assert code == 2 and "no job came in yet" in err
    Jobs(tree.folders).close()
    code, out, _ = run_cli("--config", config, "pause", "--reason", "cooling water")
    assert code == 0 and "cooling water" in out
    code, _, err = run_cli("--config", config, "pause", "--at", "tomorrow")
    assert code == 2 and "pause --at: 'tomorrow' is not a time" in err
    code, out, _ = run_cli("--config", config, "resume")
    assert (code, out.strip()) == (0, "resumed")
    code, out, _ = run_cli("--config", config, "resume")
    assert out.strip() == "the spooler was not paused"
    code, _, err = run_cli("--config", config, "cancel", "nope")
    assert code == 2 and "no job with id 'nope'" in err


def test_pause_on_a_fresh_tree_creates_the_store_and_the_spooler_started_later_honours_it(
    tree: Settings, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    """An operator pauses a machine before opening it to users (before the spooler's first
    start); the other queue commands still say there is no job yet."""
    config = str(tree.path)
    assert not tree.folders.database.exists()
    code, _, err = run_cli("--config", config, "cancel", "x")
    assert code == 2 and "no job came in yet" in err
    assert not tree.folders.database.exists(), "only pause and resume make the store"
    code, out, err = run_cli("--config", config, "pause", "--reason", "commissioning")
    assert code == 0, err
    assert out.startswith("spooler paused by ") and "commissioning" in out
    assert tree.folders.database.is_file()
    drop(tree, "a.json", good_job())
    lab = RecordingLab()
    spooler = Spooler(tree, lab=lab, clock=Clock())
    try:
        spooler.run_once()
        assert lab.engaged() == []
        record = spooler.jobs.read.require("a")
        assert record.state is JobState.QUEUED
        assert "Waiting: the spooler is paused by " in record.detail
        assert record.detail.endswith("commissioning")
        code, out, _ = run_cli("--config", config, "resume")
        assert (code, out.strip()) == (0, "resumed")
        spooler.step()
        assert [g["job_id"] for g in lab.engaged()] == ["a"]
    finally:
        spooler.close()


def test_resume_on_a_fresh_tree_says_not_paused_and_pause_makes_missing_folders(
    tree: Settings, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    config = str(tree.path)
    code, out, err = run_cli("--config", config, "resume")
    assert (code, out.strip()) == (0, "the spooler was not paused"), err
    shutil.rmtree(tree.folders.state)
    shutil.rmtree(tree.folders.status)
    code, out, err = run_cli("--config", config, "pause", "--at", "+2h")
    assert code == 0, err
    assert "stop" in out
    assert tree.folders.database.is_file() and tree.folders.status.is_dir()
    jobs = Jobs(tree.folders)
    try:
        pause = read_pause(jobs.read)
    finally:
        jobs.close()
    assert pause is not None and pause.at is not None


def test_status_of_an_unknown_job_is_one_line_and_exit_1(
    run_cli: Callable[..., tuple[int, str, str]], tree: Settings
) -> None:
    for argv in (["status", "nosuch"], ["status", "nosuch", "--json"]):
        code, out, err = run_cli("--config", str(tree.path), *argv)
        assert (code, out) == (1, "")
        assert err.strip().splitlines() == [f"labspool: no job 'nosuch' in {tree.folders.database}"]


@pytest.mark.slow  # 800 jobs through the job model
def test_output_into_a_reader_that_goes_away_ends_quietly(tree: Settings) -> None:
    from tests.conftest import record_job

    for n in range(800):  # a table longer than a pipe holds (64 KiB)
        record_job(tree, f"job{n:04d}-with-a-long-name-to-fill-the-pipe", None, JobState.QUEUED)
    process = subprocess.Popen(
        [sys.executable, "-m", "spooler.cli", "--config", str(tree.path), "status"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline()  # `| head -1`
    process.stdout.close()
    err = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(60) == 141  # 128 + SIGPIPE, as a shell tool
    assert err == ""


def test_every_json_option_prints_json_alone(tree: Settings) -> None:
    for argv in (
        ["paths", "--json"],
        ["status", "--json"],
        ["user", "list", "--json"],
        ["lab", "status", "--json"],
        ["lab", "recover", "--json"],  # no lab here: an error, said in JSON too
    ):
        done = subprocess.run(
            [sys.executable, "-m", "spooler.cli", "--config", str(tree.path), *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        json.loads(done.stdout)  # nothing else on stdout


def test_status_chooses_jobs_by_state_and_the_last_ones(
    run_cli: Callable[..., tuple[int, str, str]], tree: Settings
) -> None:
    from tests.conftest import record_job

    record_job(tree, "d1", "alice", JobState.QUEUED, JobState.RUNNING, JobState.DONE)
    record_job(tree, "e1", "bob", JobState.QUEUED, JobState.RUNNING, JobState.ERROR)
    record_job(tree, "d2", "bob", JobState.QUEUED, JobState.RUNNING, JobState.DONE)
    record_job(tree, "q1", "alice", JobState.QUEUED)
    config = str(tree.path)
    code, out, err = run_cli("--config", config, "status", "--json", "--state", "done")
    assert (code, err) == (0, "") and [d["job_id"] for d in json.loads(out)] == ["d1", "d2"]
    code, out, _ = run_cli("--config", config, "status", "--json-lines", "--last", "2")
    assert [json.loads(line)["job_id"] for line in out.splitlines()] == ["d2", "q1"]
    code, out, _ = run_cli("--config", config, "status", "--last", "1")
    rows = [line.split()[:2] for line in out.splitlines()[2:]]
    assert rows == [["1", "q1"], ["d2", "bob"]]  # the queue, then the last of the others
    code, out, _ = run_cli("--config", config, "status", "e1", "--json-lines")
    assert code == 0 and len(out.splitlines()) == 1 and json.loads(out)["status"] == "ERROR"


def test_a_listings_progress_goes_to_standard_error_alone(tree: Settings) -> None:
    from tests.conftest import record_job

    for n in range(3):
        record_job(tree, f"j{n}", None, JobState.QUEUED)
    command = [sys.executable, "-m", "spooler.cli", "--config", str(tree.path), "status"]
    done = subprocess.run(
        [*command, "--json", "--progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [d["job_id"] for d in json.loads(done.stdout)] == ["j0", "j1", "j2"]
    said = done.stderr.splitlines()
    assert said[0] == "labspool status: 3 of 3 jobs (100%)"
    assert said[-1].startswith("labspool status: 3 jobs in ")
    quiet = subprocess.run(  # by default not: standard error is not a terminal here
        command,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert quiet.returncode == 0 and quiet.stderr == ""
