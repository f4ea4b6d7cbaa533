from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job, with_lab
from tests.fakes import Clock, RecordingLab


def test_engages_each_experiment_in_order_and_runs(
    spooler: Spooler, tree: Settings, lab: RecordingLab
) -> None:
    doc = good_job(shots=4, experiments=2)
    doc["experiment_1"]["seed"] = 11
    drop(tree, "j1.json", doc)
    spooler.run_once()
    assert [g["experiment_name"] for g in lab.engaged()] == ["experiment_0", "experiment_1"]
    assert lab.engaged()[1] == {
        "job_id": "j1",
        "experiment_name": "experiment_1",
        "shots": 4,
        "seed": 11,
        "attempt": 1,
    }
    files = [arg for name, arg in lab.calls if name == "set_labscript_file"]
    assert files == [
        tree.folders.jobs / "j1" / "experiment_0.py",
        tree.folders.jobs / "j1" / "experiment_1.py",
    ]
    outputs = [arg for name, arg in lab.calls if name == "set_shot_output_folder"]
    assert outputs == [
        tree.folders.shots / "j1" / "experiment_0",
        tree.folders.shots / "j1" / "experiment_1",
    ]
    record = spooler.jobs.read.require("j1")
    assert record.state is JobState.RUNNING and record.shots_expected == 8
    experiments = spooler.jobs.read.experiments("j1", 1)
    assert [
        (e.shots_expected, e.submitted_at is not None, e.engaged_at is not None)
        for e in experiments
    ] == [(4, True, True), (4, True, True)]
    assert [h.to_state for h in spooler.jobs.read.history("j1")] == [
        JobState.INITIALIZING,
        JobState.QUEUED,
        JobState.RUNNING,
    ]


def made(spooler: Spooler, job_id: str, shots: int) -> None:
    """The result daemon received *shots* of the job's shots (BLACS made them)."""
    with spooler.jobs.change() as tx:
        tx.set_counts(job_id, shots_made=shots)


def engaged_jobs(lab: RecordingLab) -> list[object]:
    return [g["job_id"] for g in lab.engaged()]


@contextmanager
def spooler_with(
    tree: Settings, lab: RecordingLab, clock: Clock, **look_ahead: int
) -> Iterator[Spooler]:
    """A spooler on the tree with these ``lab`` settings (the look-ahead's)."""
    spooler = Spooler(with_lab(tree, **look_ahead), lab=lab, clock=clock)
    try:
        yield spooler
    finally:
        spooler.close()


def test_without_look_ahead_one_job_at_a_time(
    tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    with spooler_with(tree, lab, clock, look_ahead_jobs=0) as spooler:
        drop(tree, "a.json", good_job())
        spooler.run_once()
        drop(tree, "b.json", good_job())
        made(spooler, "a", 3)  # all made, not yet DONE: b still waits
        spooler.run_once()
        assert engaged_jobs(lab) == ["a"]
        assert spooler.jobs.read.require("b").state is JobState.QUEUED
        assert spooler.jobs.status_files.read("b")["queue_position"] == 1
        with spooler.jobs.change() as tx:
            tx.transition("a", JobState.DONE)
        spooler.step()
        assert engaged_jobs(lab) == ["a", "b"]


def test_the_look_ahead_engages_jobs_behind_the_running_one(
    tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    with spooler_with(tree, lab, clock, look_ahead_jobs=2, look_ahead_shots=10) as spooler:
        for name in "abcd":
            drop(tree, f"{name}.json", good_job(shots=3))
        spooler.run_once()
        spooler.step()  # one job engaged per step
        spooler.step()
        # a runs, b and c behind it (6 shots to make before c: within 10), d waits
        assert engaged_jobs(lab) == ["a", "b", "c"]
        assert spooler.jobs.status_files.read("d")["queue_position"] == 1
        made(spooler, "a", 2)
        spooler.step()
        assert engaged_jobs(lab) == ["a", "b", "c"], "three jobs still have shots to make"
        made(spooler, "a", 3)  # a's shots are all made; its analysis does not hold d back
        spooler.step()
        assert engaged_jobs(lab) == ["a", "b", "c", "d"]
        assert spooler.jobs.read.require("a").state is JobState.RUNNING


def test_the_look_ahead_waits_while_many_shots_are_still_to_make(
    tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    with spooler_with(tree, lab, clock, look_ahead_jobs=2, look_ahead_shots=10) as spooler:
        drop(tree, "long.json", good_job(shots=25))
        drop(tree, "next.json", good_job(shots=2))
        spooler.run_once()
        assert engaged_jobs(lab) == ["long"]
        made(spooler, "long", 14)  # 11 to make
        spooler.step()
        assert engaged_jobs(lab) == ["long"]
        made(spooler, "long", 15)  # 10 to make: the next one is engaged now
        spooler.step()
        assert engaged_jobs(lab) == ["long", "next"]


def test_unreachable_lab_leaves_the_job_queued_and_looks_again(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    lab.reachable = False
    drop(tree, "j.json", good_job())
    spooler.run_once()
    status = spooler.jobs.status_files.read("j")
    assert status["status"] == "QUEUED"
    assert status["detail"].endswith(
        "Waiting for the machine: runmanager: runmanager at localhost:42523 does not answer, "
        "blacs: BLACS did not answer"
    )
    clock.now += tree.lab.health_interval_s
    spooler.step()  # looks again, still down: the detail does not repeat itself
    assert spooler.jobs.read.require("j").detail.count("Waiting for the machine") == 1
    lab.reachable = True
    spooler.step()
    assert spooler.jobs.read.require("j").state is JobState.QUEUED  # not before the next look
    clock.now += tree.lab.health_interval_s
    spooler.step()
    record = spooler.jobs.read.require("j")
    assert record.state is JobState.RUNNING
    assert "The machine is operational again" in record.detail


def test_a_refused_global_ends_the_job_with_the_labs_message(
    spooler: Spooler, tree: Settings, lab: RecordingLab
) -> None:
    lab.refuse_global = "seed"
    doc = good_job()
    doc["experiment_0"]["seed"] = 3
    drop(tree, "j.json", doc)
    drop(tree, "k.json", good_job())
    spooler.run_once()
    status = spooler.jobs.status_files.read("j")
    assert status["status"] == "ERROR"
    assert status["error_message"] == "Global seed not found in any active group"
    spooler.step()
    assert spooler.jobs.read.require("k").state is JobState.RUNNING


def test_an_engage_that_fails_is_resumed_without_repeating_engaged_experiments(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    drop(tree, "j.json", good_job(shots=2, experiments=3))
    lab.fail_engage_times = 0
    original = lab.engage
    count = {"n": 0}

    def engage() -> None:
        count["n"] += 1
        if count["n"] == 2:
            from spooler.core.errors import LabUnavailable

            raise LabUnavailable("runmanager timed out")
        original()

    lab.engage = engage  # type: ignore[method-assign]
    spooler.run_once()
    assert [g["experiment_name"] for g in lab.engaged()] == ["experiment_0"]
    clock.now += 100
    spooler.step()
    assert [g["experiment_name"] for g in lab.engaged()] == [
        "experiment_0",
        "experiment_1",
        "experiment_2",
    ]
    assert spooler.jobs.read.require("j").shots_expected == 6


def test_a_shot_count_other_than_asked_is_said(
    spooler: Spooler, tree: Settings, lab: RecordingLab
) -> None:
    lab.n_shots = lambda: 7  # type: ignore[method-assign]
    drop(tree, "j.json", good_job(shots=3))
    spooler.run_once()
    record = spooler.jobs.read.require("j")
    assert record.shots_expected == 7
    assert "Submitting experiment_0: 7 shot(s) (the job asks for 3" in record.detail


def test_resubmitting_an_unconfirmed_experiment_is_recorded(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    drop(tree, "j.json", good_job(shots=2, experiments=2))
    lab.fail_engage_times = 1  # the first engage times out: submitted, never confirmed
    spooler.run_once()
    assert lab.engaged() == []
    clock.now += 100
    spooler.step()
    assert [g["experiment_name"] for g in lab.engaged()] == ["experiment_0", "experiment_1"]
    detail = spooler.jobs.read.require("j").detail
    assert (
        "experiment_0 was submitted without confirmation and no shot file appeared in 100 s: "
        "submitting it again" in detail
    )


def test_an_unconfirmed_experiment_with_shot_files_is_not_submitted_again(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    drop(tree, "j.json", good_job(shots=2, experiments=2))
    lab.fail_engage_times = 1  # submitted, then the engage call times out...
    spooler.run_once()
    folder = tree.folders.shot_folder("j", 1, "experiment_0")
    (folder / "shot_0.h5").write_bytes(b"")  # ...but runmanager did compile it
    clock.now += 5  # within resubmit_after_s: the evidence decides at once
    spooler.step()
    assert [g["experiment_name"] for g in lab.engaged()] == ["experiment_1"]
    detail = spooler.jobs.read.require("j").detail
    assert "runmanager has made 1 shot file(s) of it: counted as engaged" in detail


def test_an_unconfirmed_experiment_without_shot_files_waits_before_resubmitting(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    drop(tree, "j.json", good_job(shots=2))
    lab.fail_engage_times = 1
    spooler.run_once()
    clock.now += 5
    spooler.step()
    assert lab.engaged() == []
    assert "waiting for runmanager before submitting it again" in (
        spooler.jobs.read.require("j").detail
    )
    clock.now += 30
    spooler.step()
    assert [g["experiment_name"] for g in lab.engaged()] == ["experiment_0"]


def test_an_unconfirmed_experiment_whose_shots_were_already_archived_is_not_repeated(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    """The folder is empty again (the result daemon moved the shots to the store), but the
    plugin's address files, filed to processed/, say the shots were made."""
    drop(tree, "j.json", good_job(shots=2))
    lab.fail_engage_times = 1
    spooler.run_once()
    folder = tree.folders.shot_folder("j", 1, "experiment_0")
    for n in range(2):
        address = {"shot": str(folder / f"s{n}.h5"), "job_id": "j", "experiment": "experiment_0"}
        (tree.folders.processed / f"j__experiment_0__0000{n}.json").write_text(json.dumps(address))
    other = {"shot": str(tree.folders.shots / "j" / "attempt-2" / "experiment_0" / "x.h5")}
    (tree.folders.processed / "j__experiment_0__00000.json.1").write_text(json.dumps(other))
    clock.now += 100
    spooler.step()
    assert lab.engaged() == []
    detail = spooler.jobs.read.require("j").detail
    assert "runmanager has made 2 shot file(s) of it: counted as engaged" in detail
