"""Single-shot analysis on each executor, on the virtual lab: inline, worker processes, a
Dask LocalCluster and an existing Dask scheduler with its workers (loopback, random ports,
no dashboard). Every process a test starts is stopped by pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.labtools import VirtualLab, needs_suite, virtual_lab, wait_until
from tests.result.test_results_robustness import assert_every_shot_once_on_the_store
from tests.virtual.test_virtual_lab import experiment

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.long, needs_suite]

ROOT = Path(__file__).resolve().parents[2]
EXECUTORS: dict[str, dict[str, Any]] = {
    "inline": {"kind": "inline"},
    "processes": {"kind": "processes", "workers": 2},
    "dask": {"kind": "dask", "workers": 2},
}
COUNT = ["--routine", "result.routines.singlequdit:count_atoms"]
LINGER = ["--routine", "tests.result.routines_for_tests:linger"]


def configure(config: Path, executor: dict[str, Any], routines: list[str] | None = None) -> None:
    raw: dict[str, Any] = yaml.safe_load(config.read_text())
    raw.setdefault("result", {})["executor"] = executor
    if routines is not None:
        raw["result"]["routines"] = routines
        raw["result"]["memory_routine"] = "count_atoms"
    config.write_text(yaml.safe_dump(raw))


def reprocess(config: Path, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "result.cli", "--config", str(config), "reprocess", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
    )


def finished(lab: VirtualLab, job_id: str, timeout_s: float = 240) -> dict[str, Any]:
    status = lab.wait_for_status(job_id, lambda s: s.get("status") in ("DONE", "ERROR"), timeout_s)
    assert status["status"] == "DONE", status
    return status


def outputs(lab: VirtualLab, job_id: str) -> tuple[bytes, bytes]:
    folders = lab.settings.folders
    return (
        (folders.sds / job_id / "experiment_0.csv").read_bytes(),
        (folders.results / f"{job_id}.json").read_bytes(),
    )


def versions(lab: VirtualLab, job_id: str) -> list[str | None]:
    with sqlite3.connect(f"file:{lab.settings.folders.database}?mode=ro", uri=True) as db:
        return [
            r[0]
            for r in db.execute(
                "SELECT routines FROM shots WHERE job_id = ? AND state = 'archived'", (job_id,)
            )
        ]


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def test_each_executor_finishes_a_job_and_reprocesses_it_to_the_same_bytes(
    tmp_path: Path,
) -> None:
    with virtual_lab(tmp_path / "lab") as lab:
        memories = {}
        for name, executor in EXECUTORS.items():
            configure(lab.config, executor)
            lab.start_result_daemon()
            job_id = f"same_{name}"
            lab.submit(job_id, {"experiment_0": experiment(1.3, 4, seed=11)}, tmp_path)
            finished(lab, job_id)
            result = json.loads((lab.settings.folders.results / f"{job_id}.json").read_text())
            memories[name] = result["results"][0]["data"]["memory"]
            lab.stop_result_daemon()
            assert_every_shot_once_on_the_store(lab, job_id, 4)
        assert memories["inline"] == memories["processes"] == memories["dask"], memories
        assert all(m.isdigit() for m in memories["inline"])

        # The same archived shots, analysed again with a routine more on each executor:
        # the CSV and the result JSON are the same, byte for byte, whatever ran them.
        written = {}
        for name, executor in EXECUTORS.items():
            configure(lab.config, executor)
            done = reprocess(
                lab.config,
                "same_inline",
                "--force",
                *COUNT,
                "--routine",
                "tests.result.routines_for_tests:parity",
            )
            assert done.returncode == 0, done.stderr
            assert "reprocessed 4 shot(s) of 1 job(s)" in done.stdout, done.stdout
            written[name] = outputs(lab, "same_inline")
        assert b"parity" in written["inline"][0]
        assert written["inline"] == written["processes"] == written["dask"]


@pytest.mark.parametrize("kind", ["processes", "dask"])
def test_a_worker_killed_mid_task_loses_no_shot_and_archives_none_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    monkeypatch.setenv("LABSPOOL_TEST_BUSY", str(busy))  # the workers inherit it
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # and import the tests' routine
    shots = 6
    with virtual_lab(
        tmp_path / "lab",
        prepare=lambda c: configure(
            c,
            EXECUTORS[kind],
            ["result.routines.singlequdit:count_atoms", "tests.result.routines_for_tests:linger"],
        ),
    ) as lab:
        daemon = lab.start_result_daemon()
        lab.submit("killed", {"experiment_0": experiment(0.9, shots, seed=12)}, tmp_path)
        wait_until(busy, lambda: any(busy.iterdir()), 120, "a worker in the middle of a shot")
        victim = int(next(busy.iterdir()).name)
        assert victim in descendants(daemon.pid), "a worker of the daemon"
        os.kill(victim, signal.SIGKILL)
        status = finished(lab, "killed")
        assert status["shots_done"] == shots
        assert daemon.poll() is None, "the daemon lives on"
        assert_every_shot_once_on_the_store(lab, "killed", shots)
        assert not list(lab.settings.folders.sds.rglob(".*.work")), "a work copy was left"
        assert not list(lab.settings.folders.quarantine.glob("*.h5"))
        if kind == "processes":
            assert "died on" in (lab.root / "result.log").read_text()


@pytest.mark.parametrize("kind", ["processes", "dask"])
def test_a_killed_reprocess_resumes_where_it_was(tmp_path: Path, kind: str) -> None:
    """While the daemon runs; the reprocess's workers (a pool, or a LocalCluster's) die with
    it."""
    shots = 6
    with virtual_lab(
        tmp_path / "lab", result_daemon=True, prepare=lambda c: configure(c, EXECUTORS[kind])
    ) as lab:
        lab.submit("resume", {"experiment_0": experiment(0.5, shots, seed=13)}, tmp_path)
        finished(lab, "resume")
        before = versions(lab, "resume")
        first = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "result.cli",
                "--config",
                str(lab.config),
                "reprocess",
                "resume",
                *COUNT,
                *LINGER,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            store = lab.settings.folders.sds / "resume"
            wait_until(
                store,
                lambda: sum(v != before[0] for v in versions(lab, "resume")) >= 2,
                120,
                "two shots reprocessed",
            )
            workers = descendants(first.pid)
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        wait_until(
            store,
            lambda: not any(Path(f"/proc/{p}").exists() for p in workers),
            30,
            "its workers to die with it",
        )
        done_before = sum(v != before[0] for v in versions(lab, "resume"))
        assert 2 <= done_before < shots, done_before
        again = reprocess(lab.config, "resume", *COUNT, *LINGER)
        assert again.returncode == 0, again.stderr
        assert f"reprocessed {shots - done_before} shot(s)" in again.stdout, again.stdout
        assert f"{done_before} carried that version already" in again.stdout
        assert "resume: CSVs and result rewritten" in again.stdout
        assert len(set(versions(lab, "resume"))) == 1 and versions(lab, "resume")[0] != before[0]
        assert b"lingered" in outputs(lab, "resume")[0]
        assert not list(store.rglob(".*.reprocess")), "a work copy was left"
        assert f"Reprocessed {shots} archived shot(s) with" in lab.status("resume")["detail"]


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """`dask scheduler` and one `dask worker` (one thread) on loopback, random ports."""
    dask = str(Path(sys.executable).parent / "dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    with (tmp_path / "dask.log").open("ab") as log:
        processes = [
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        ]
    yield address, processes
    for process in reversed(processes):
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_reprocess_uses_the_workers_of_an_existing_dask_scheduler(
    tmp_path: Path, dask_cluster: tuple[str, list[subprocess.Popen[bytes]]]
) -> None:
    from spooler.core.labprofile import site_folder

    address, processes = dask_cluster
    with virtual_lab(tmp_path / "lab", result_daemon=True) as lab:
        lab.submit("remote", {"experiment_0": experiment(0.7, 3, seed=14)}, tmp_path)
        finished(lab, "remote")
        profile = lab.settings.lab.labscript_profile
        assert profile is not None
        # A worker as on another machine: labspool installed, the lab's labscript profile
        # (its zlock server), the shots and the store at the same paths.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site_folder(profile)), str(ROOT)])}
        with (tmp_path / "worker.log").open("ab") as log:
            worker = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "dask"),
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(worker)
        configure(lab.config, {"kind": "dask", "scheduler": address})
        done = reprocess(
            lab.config, "remote", *COUNT, "--routine", "tests.result.routines_for_tests:parity"
        )
        assert done.returncode == 0, done.stderr
        assert "reprocessed 3 shot(s)" in done.stdout, done.stdout
        (line,) = [x for x in done.stdout.splitlines() if x.startswith("analysed by: ")]
        pids = {int(w.rsplit(":", 1)[1]) for w in line.removeprefix("analysed by: ").split(", ")}
        assert pids and pids <= descendants(worker.pid), (pids, descendants(worker.pid))
        assert b"parity" in outputs(lab, "remote")[0]


def test_a_shot_that_kills_dask_workers_is_given_up_and_the_rest_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import the tests' routine
    with virtual_lab(
        tmp_path / "lab",
        prepare=lambda c: configure(
            c,
            EXECUTORS["dask"],
            [
                "result.routines.singlequdit:count_atoms",
                "tests.result.routines_for_tests:die_on_poison",
            ],
        ),
    ) as lab:
        daemon = lab.start_result_daemon()
        lab.submit("poison", {"experiment_0": experiment(1.0, 4, seed=4)}, tmp_path)
        lab.submit("fine", {"experiment_0": experiment(1.0, 3, seed=5)}, tmp_path)
        poison = lab.wait_for_status("poison", lambda s: s.get("status") in ("DONE", "ERROR"), 300)
        assert poison["status"] == "ERROR", poison
        assert "Dask workers died while analysing it" in poison["error_message"]
        assert "KilledWorker" in poison["error_message"]
        assert poison["shots_done"] == 3, "the other shots are archived"
        assert finished(lab, "fine")["shots_done"] == 3
        assert daemon.poll() is None, "the daemon lives on"
        (kept,) = lab.settings.folders.quarantine.glob("poison__*.h5")
        assert kept.stat().st_size > 0
