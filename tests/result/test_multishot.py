"""Multi-shot routines: their input, their files on the store, and a failing routine losing
none of a job's outputs (the finisher's CSVs, result JSON and DONE; lyse's DataFrame made
here without lyse, from the ledger's rows)."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from result.analysis import Routine
from result.finishing import JobFinisher
from result.multishot import (
    MultishotInput,
    experiment_order,
    is_plain_artefact,
    job_frame,
    run_multishot,
)
from spooler.core.backends import get_backend
from spooler.core.errors import ConfigError
from spooler.core.jobs import Jobs
from spooler.core.settings import Settings, load_settings
from spooler.core.states import JobState
from spooler.core.store.shots import Ledger
from tests.result.multishot_frames import (
    FINISHED_AT,
    flat_frame,
    job_of,
    lyse_like_frame,
    shot_flat,
)
from tests.result.test_result_daemon import Clock, running_job

T = "tests.result.routines_for_tests"


def routine(function: Callable[[MultishotInput], Any], spec: str | None = None) -> Routine:
    name = function.__name__
    return Routine(name, spec or f"here:{name}", function)


def returning(files: Mapping[Any, Any]) -> Callable[[MultishotInput], Any]:
    def made(job: MultishotInput) -> Any:
        return files

    return made


@pytest.fixture
def job() -> MultishotInput:
    return job_of({"experiment_0": ["3", "4"], "experiment_1": ["5", ""]})


# -- the routines' run: files, names, failures -------------------------------------------


def test_files_are_written_into_the_store_and_named(job: MultishotInput, tmp_path: Path) -> None:
    routines = [
        routine(returning({"a.png": b"\x89PNG", "b.txt": bytearray(b"b")}), "m:one"),
        routine(returning({"c.json": memoryview(b"{}")}), "m:two"),
    ]
    artefacts = run_multishot(routines, job, tmp_path, reserved=set())
    assert artefacts.made == {n: tmp_path / n for n in ("a.png", "b.txt", "c.json")}
    assert [(tmp_path / n).read_bytes() for n in ("a.png", "b.txt", "c.json")] == [
        b"\x89PNG",
        b"b",
        b"{}",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.txt", "c.json"]
    assert artefacts.header() == {
        "artefacts": {n: str(tmp_path / n) for n in ("a.png", "b.txt", "c.json")},
        "artefacts_failed": {},
    }


@pytest.mark.parametrize(
    "name",
    [
        "../up.png",
        "a/b.png",
        "/etc/passwd",
        ".hidden",
        "..",
        "-rf",
        "x.tmp",
        "backup~",
        "",
        "bild-ä.png",
        "two words.png",
        "line\nbreak",
        "x" * 129,
        7,
        b"bytes.png",
    ],
)
def test_a_name_that_is_not_plain_refuses_the_routines_whole_output(
    job: MultishotInput, tmp_path: Path, name: Any
) -> None:
    routines = [
        routine(returning({"good.txt": b"g", name: b"x"}), "m:bad"),
        routine(returning({"after.txt": b"a"}), "m:after"),
    ]
    store = tmp_path / "store"
    store.mkdir()
    artefacts = run_multishot(routines, job, store, reserved=set())
    assert "refused" in artefacts.failed["m:bad"] and repr(name) in artefacts.failed["m:bad"]
    assert list(artefacts.made) == ["after.txt"], "the next routine ran"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["after.txt", "store"]


@pytest.mark.parametrize("name", ["picture.png", "a", "A_1-b.c", "0", "_x", "x" * 128])
def test_plain_names_are_taken(name: str) -> None:
    assert is_plain_artefact(name)


def test_names_taken_by_the_csvs_the_shots_or_another_routine_are_refused(
    job: MultishotInput, tmp_path: Path
) -> None:
    routines = [
        routine(returning({"fit.png": b"1"}), "m:first"),
        routine(returning({"fit.png": b"2"}), "m:again"),
        routine(returning({"experiment_0.csv": b"x"}), "m:csv"),
        routine(returning({"experiment_0": b"x"}), "m:folder"),
    ]
    reserved = {"experiment_0", "experiment_0.csv"}
    artefacts = run_multishot(routines, job, tmp_path, reserved=reserved)
    assert (tmp_path / "fit.png").read_bytes() == b"1"
    assert set(artefacts.failed) == {"m:again", "m:csv", "m:folder"}
    assert all("already taken" in message for message in artefacts.failed.values())
    assert not (tmp_path / "experiment_0.csv").exists()


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        (None, "returned NoneType, not a mapping"),
        ([("a.txt", b"x")], "returned list, not a mapping"),
        ({"a.txt": "text"}, "returned str for 'a.txt', not bytes"),
        ({"a.txt": None}, "returned NoneType for 'a.txt', not bytes"),
    ],
)
def test_an_output_that_is_not_names_to_bytes_is_refused(
    job: MultishotInput, tmp_path: Path, output: Any, fragment: str
) -> None:
    artefacts = run_multishot([routine(returning(output), "m:odd")], job, tmp_path, reserved=set())
    assert fragment in artefacts.failed["m:odd"]
    assert not artefacts.made and not list(tmp_path.iterdir())


def test_a_routine_that_raises_is_logged_with_the_job_and_the_others_run(
    job: MultishotInput, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(job: MultishotInput) -> dict[str, bytes]:
        raise ZeroDivisionError("no shots to average")

    routines = [
        routine(broken, "m:broken"),
        routine(returning({"ok.txt": b"ok"}), "m:ok"),
    ]
    with caplog.at_level(logging.ERROR, logger="result.multishot"):
        artefacts = run_multishot(routines, job, tmp_path, reserved=set())
    assert artefacts.failed == {"m:broken": "ZeroDivisionError: no shots to average"}
    assert artefacts.made == {"ok.txt": tmp_path / "ok.txt"}
    (record,) = caplog.records
    assert record.job_id == "flop"  # type: ignore[attr-defined]
    assert "m:broken" in record.getMessage() and record.exc_info is not None


def test_a_file_that_cannot_be_written_fails_its_routine_only(
    job: MultishotInput, tmp_path: Path
) -> None:
    blocked = tmp_path / "store"
    blocked.mkdir()
    (blocked / "taken.png").mkdir()  # a folder where the file would go: the rename fails
    routines = [
        routine(returning({"first.txt": b"1", "taken.png": b"x"}), "m:blocked"),
        routine(returning({"next.txt": b"n"}), "m:next"),
    ]
    artefacts = run_multishot(routines, job, blocked, reserved=set())
    assert artefacts.failed["m:blocked"].startswith("cannot write taken.png: ")
    assert set(artefacts.made) == {"first.txt", "next.txt"}, "what was written is named"
    assert not [p for p in blocked.iterdir() if p.name.startswith(".")], "no temporary left"


# -- the input ------------------------------------------------------------------------------


def test_experiments_are_in_index_order() -> None:
    names = ["experiment_10", "experiment_2", "other", "experiment_0", "experiment_1"]
    assert experiment_order(names) == [
        "experiment_0",
        "experiment_1",
        "experiment_2",
        "experiment_10",
        "other",
    ]


def test_the_jobs_frame_is_the_experiments_frames_with_an_experiment_column() -> None:
    shallow = lyse_like_frame("j", "experiment_0", ["1", "2"])
    deeper = flat_frame(
        [{**shot_flat("j", "experiment_1", 0, "7"), ("fit", "params", "omega"): 2.5}]
    )
    frame = job_frame({"experiment_0": shallow, "experiment_1": deeper})
    assert frame.columns.nlevels == 3
    assert frame.columns[0] == ("experiment", "", "")
    assert list(frame["experiment"]) == ["experiment_0", "experiment_0", "experiment_1"]
    assert list(frame[("count_atoms", "memory", "")]) == ["1", "2", "7"]
    assert frame[("fit", "params", "omega")].isna().tolist() == [True, True, False]
    assert len(job_frame({})) == 0


# -- the finisher: a complete job's outputs --------------------------------------------------


def with_result(settings: Settings, **keys: object) -> Settings:
    raw = yaml.safe_load(settings.path.read_text(encoding="utf-8"))
    raw["result"].update(keys)
    settings.path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_settings(settings.path)


@pytest.fixture
def lyse_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """experiment_frame without lyse: the ledger's flat dictionaries made into a frame."""

    def frame(rows: Any) -> Any:
        return flat_frame(pickle.loads(r.frame) for r in rows if r.frame is not None)

    monkeypatch.setattr("result.finishing.experiment_frame", frame)


class Finished:
    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.jobs = Jobs(settings.folders, clock=clock)
        self.finisher = JobFinisher(
            settings, self.jobs, get_backend(settings.backend), wall_clock=clock
        )

    def complete(self, job_id: str, memory: dict[str, list[str]]) -> None:
        """A running job whose every shot is archived, with these memory entries."""
        running_job(self.settings, job_id, {n: len(m) for n, m in memory.items()}, self.clock.now)
        with self.jobs.change() as tx:
            for name, entries in memory.items():
                for i, entry in enumerate(entries):
                    frame = pickle.dumps(shot_flat(job_id, name, i, entry))
                    tx.execute(
                        "INSERT INTO shots (address, job_id, attempt, experiment, shot_index, "
                        "local_path, state, sds_path, memory, frame, received_at, archived_at) "
                        "VALUES (?, ?, 1, ?, ?, '/x.h5', 'archived', ?, ?, ?, ?, ?)",
                        (
                            f"{job_id}__{name}__{i}",
                            job_id,
                            name,
                            i,
                            f"/sds/{job_id}/{name}/{i}.h5",
                            entry,
                            frame,
                            self.clock.now,
                            self.clock.now,
                        ),
                    )

    def result(self, job_id: str) -> dict[str, Any]:
        path = self.settings.folders.results / f"{job_id}.json"
        document: dict[str, Any] = json.loads(path.read_text())
        return document

    def close(self) -> None:
        self.jobs.close()


@pytest.fixture
def finished(tree: Settings, lyse_free: None) -> Iterator[Callable[..., Finished]]:
    made: list[Finished] = []

    def make(**result: object) -> Finished:
        settings = with_result(tree, **result) if result else tree
        made.append(Finished(settings, Clock(FINISHED_AT)))
        return made[-1]

    yield make
    for f in made:
        f.close()


MEMORY = {  # added in this order: the routines see them in index order
    "experiment_0": ["0", "1", "0"],
    "experiment_10": ["9", "10", "11"],
    "experiment_2": ["2", "", "3"],
}


def test_failing_routines_lose_neither_the_csvs_nor_the_result_and_the_job_is_done(
    finished: Callable[..., Finished],
) -> None:
    f = finished(
        multishot_routines=[
            f"{T}:fail_to_fit",
            f"{T}:escape_the_store",
            f"{T}:summarise",
            f"{T}:overwrite_a_csv",
            f"{T}:text_not_bytes",
            "result.routines.picture:draw_job",
        ]
    )
    f.complete("scan", MEMORY)
    f.finisher.check_all()
    record = f.jobs.read.require("scan")
    assert record.state is JobState.DONE
    store = f.settings.folders.sds / "scan"
    for name in MEMORY:
        assert (store / f"{name}.csv").read_text().count("\n") == 3 + 2  # two header rows
    result = f.result("scan")
    assert [r["data"]["memory"] for r in result["results"]] == list(MEMORY.values())
    header = result["header"]
    assert header["artefacts"] == {
        "summary.json": str(store / "summary.json"),
        "scan.png": str(store / "scan.png"),
    }
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in header["artefacts"].values())
    failed = header["artefacts_failed"]
    assert failed[f"{T}:fail_to_fit"] == "RuntimeError: the fit did not converge"
    assert "'../escaped.txt'" in failed[f"{T}:escape_the_store"]
    assert "already taken" in failed[f"{T}:overwrite_a_csv"]
    assert "not bytes" in failed[f"{T}:text_not_bytes"]
    assert len(failed) == 4
    assert not (store / "fine.txt").exists() and not (store.parent / "escaped.txt").exists()
    assert (store / "experiment_0.csv").read_text().startswith(",")  # lyse's, not the routine's
    assert f"{T}:fail_to_fit" in record.detail and "failed" in record.detail
    assert (store / "scan.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_routines_get_the_experiments_in_index_order_and_the_whole_job(
    finished: Callable[..., Finished],
) -> None:
    f = finished(multishot_routines=[f"{T}:summarise"])
    f.complete("order", MEMORY)
    f.finisher.check_all()
    summary = json.loads((f.settings.folders.sds / "order" / "summary.json").read_text())
    order = ["experiment_0", "experiment_2", "experiment_10"]
    assert summary["experiments"] == order
    assert summary["rows"] == {name: 3 for name in order}
    assert summary["experiment_column"] == [name for name in order for _ in range(3)]
    assert summary["memory"] == {name: MEMORY[name] for name in order}
    assert summary["frame_memory"] == summary["memory"], "the ledger's memory is the frames'"
    assert (summary["job_id"], summary["backend"]) == ("order", "singlequdit")
    assert summary["finished_at"] == FINISHED_AT


def test_rewritten_outputs_keep_the_time_the_job_was_done(
    finished: Callable[..., Finished],
) -> None:
    f = finished(multishot_routines=[f"{T}:summarise"])
    f.complete("again", {"experiment_0": ["1"]})
    f.clock.now += 5
    f.finisher.check_all()
    done_at = f.jobs.read.entered("again", 1, JobState.DONE)
    assert done_at == FINISHED_AT + 5
    f.clock.now += 86_400  # reprocessed a day later
    job = f.jobs.read.require("again")
    f.finisher.write_outputs(job, Ledger.of_job(f.jobs.read, "again", 1))
    summary = json.loads((f.settings.folders.sds / "again" / "summary.json").read_text())
    assert summary["finished_at"] == done_at


def test_the_shipped_configuration_draws_the_picture(finished: Callable[..., Finished]) -> None:
    f = finished()
    assert f.settings.result.multishot_routines == ("result.routines.picture:draw_job",)
    f.complete("pic", {"experiment_0": ["3", "4"], "experiment_1": ["5", "6"]})
    f.finisher.check_all()
    png = f.settings.folders.sds / "pic" / "pic.png"
    header = f.result("pic")["header"]
    assert {k: header[k] for k in ("artefacts", "artefacts_failed")} == {
        "artefacts": {"pic.png": str(png)},
        "artefacts_failed": {},
    }
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_routines_the_result_header_stays_empty(finished: Callable[..., Finished]) -> None:
    f = finished(multishot_routines=[])
    f.complete("plain", {"experiment_0": ["3"]})
    f.finisher.check_all()
    assert f.jobs.read.require("plain").state is JobState.DONE
    assert list(f.result("plain")["header"]) == ["provenance"]  # tests/result/test_provenance.py
    assert sorted(p.name for p in (f.settings.folders.sds / "plain").iterdir()) == [
        "experiment_0.csv"
    ]


def test_a_routine_that_cannot_be_imported_is_a_configuration_error(tree: Settings) -> None:
    settings = with_result(tree, multishot_routines=[f"{T}:no_such_routine"])
    jobs = Jobs(settings.folders)
    try:
        with pytest.raises(ConfigError, match=r"result\.multishot_routines: cannot load"):
            JobFinisher(settings, jobs, get_backend(settings.backend))
    finally:
        jobs.close()
