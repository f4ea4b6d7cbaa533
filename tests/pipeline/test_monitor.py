"""The health monitor with the test double of the lab: hold, blame, the environment's errors,
shots of ended jobs, notifications."""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path

from spooler.core.health import BlacsReport, DeviceError, read_health
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store.notifications import NotificationRows
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job
from tests.fakes import Clock, RecordingLab

CAMERA = DeviceError("camera", "RuntimeError: the camera overheated")


def paused(lab: RecordingLab, head: Path | None, *devices: DeviceError) -> None:
    """BLACS paused its queue (with *head* put back at its front, devices in error)."""
    lab.blacs = dataclasses.replace(
        lab.blacs,
        paused=True,
        status="Device(s) in error state\nQueue Paused",
        head=None if head is None else str(head),
        devices_in_error=devices,
    )


def look(spooler: Spooler, clock: Clock, tree: Settings) -> None:
    clock.now += tree.lab.health_interval_s
    spooler.step()


def notifications(spooler: Spooler) -> list[tuple[str, str, str]]:
    rows = NotificationRows.due(spooler.jobs.read, float("inf"))
    return [(r.kind, r.title, r.body) for r in rows]


def test_a_healthy_machine_is_recorded_operational(
    spooler: Spooler, tree: Settings, lab: RecordingLab
) -> None:
    spooler.step()
    health = read_health(spooler.jobs.read, spooler.jobs.store.clock())
    assert health.operational and health.status_msg == "operational" and not health.reasons
    assert notifications(spooler) == []  # a machine that starts up well is no news


def test_a_paused_blacs_holds_the_queue_and_tells(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    spooler.step()
    paused(lab, None, CAMERA)
    drop(tree, "j.json", good_job())
    clock.now += tree.lab.health_interval_s
    spooler.run_once()
    record = spooler.jobs.read.require("j")
    assert record.state is JobState.QUEUED
    assert record.notes[-1] == (
        "Waiting for the machine: blacs: BLACS's queue is paused: camera: RuntimeError: "
        "the camera overheated"
    )
    assert lab.engaged() == []
    health = read_health(spooler.jobs.read, spooler.jobs.store.clock())
    assert not health.operational and [r.component for r in health.reasons] == ["blacs"]
    [(kind, title, body)] = notifications(spooler)
    assert kind == "machine_down" and "not operational" in title
    assert "camera overheated" in body and "labspool lab recover" in body
    for _ in range(3):  # still down: nothing repeats
        look(spooler, clock, tree)
    assert spooler.jobs.read.require("j").detail.count("Waiting for the machine") == 1
    assert len(notifications(spooler)) == 1
    lab.recover()
    look(spooler, clock, tree)
    record = spooler.jobs.read.require("j")
    assert record.state is JobState.RUNNING
    assert "The machine is operational again" in record.detail
    assert [n[0] for n in notifications(spooler)] == ["machine_down", "machine_up"]


def test_a_job_whose_shots_keep_failing_a_device_is_given_up_and_the_rest_goes_on(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    drop(tree, "bad.json", good_job(shots=20))  # more than the look-ahead's 10 shots
    spooler.run_once()
    assert spooler.jobs.read.require("bad").state is JobState.RUNNING
    drop(tree, "good.json", good_job(shots=1))
    spooler.run_once()
    shot = tree.folders.shot_folder("bad", 1, "experiment_0") / "0001_0.h5"
    limit = tree.limits.item_deaths_max
    for failure in range(1, limit + 1):
        paused(lab, shot, CAMERA)
        look(spooler, clock, tree)
        look(spooler, clock, tree)  # the same pause, seen again: counted once
        faults = spooler.jobs.read.lab_faults("bad", 1)
        assert len(faults) == failure
        if failure < limit:
            record = spooler.jobs.read.require("bad")
            assert record.state is JobState.RUNNING
            assert f"({failure} of {limit} such failures" in record.notes[-1]
            lab.recover()  # an operator's `labspool lab recover`; the shot runs again, fails
            look(spooler, clock, tree)
    bad = spooler.jobs.read.require("bad")
    assert bad.state is JobState.ERROR
    assert f"devices failed {limit} times" in str(bad.error_message)
    assert "camera: RuntimeError: the camera overheated" in str(bad.error_message)
    look(spooler, clock, tree)  # its shots are withdrawn from BLACS's queue
    withdrawn = [arg for name, arg in lab.calls if name == "withdraw"]
    assert withdrawn and tree.folders.shot_folder("bad", 1, "experiment_0") in withdrawn[-1][0]
    assert spooler.jobs.read.require("good").state is JobState.QUEUED  # held: still paused
    lab.recover()
    look(spooler, clock, tree)
    assert spooler.jobs.read.require("good").state is JobState.RUNNING
    kinds = [n[0] for n in notifications(spooler)]
    assert "job_error" in kinds and kinds.count("machine_down") == limit


def test_a_fault_tied_to_no_job_ends_none(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    drop(tree, "j.json", good_job(shots=3))
    spooler.run_once()
    for _ in range(tree.limits.item_deaths_max + 2):
        # a queue manager error (a full disk): paused, no device in error
        lab.blacs = dataclasses.replace(
            lab.blacs, paused=True, status="Error in queue manager\nQueue paused"
        )
        look(spooler, clock, tree)
        lab.recover()
        paused(lab, None, CAMERA)  # a device that fails with no shot of a job at the head
        look(spooler, clock, tree)
        lab.recover()
        look(spooler, clock, tree)
    assert spooler.jobs.read.require("j").state is JobState.RUNNING
    assert spooler.jobs.read.lab_faults("j", 1) == []


def test_a_read_only_shot_folder_while_engaging_is_the_machines_fault(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    spooler.step()
    failures = [OSError(errno.EROFS, "Read-only file system", str(tree.folders.shots / "j"))]

    def engage() -> None:
        if failures:
            raise failures.pop()
        lab.calls.append(("engage", None))

    lab.engage = engage  # type: ignore[method-assign]
    drop(tree, "j.json", good_job())
    spooler.run_once()
    record = spooler.jobs.read.require("j")
    assert record.state is JobState.RUNNING  # submitted before the failure: not ERROR
    assert "Read-only file system" in record.detail
    health = read_health(spooler.jobs.read, spooler.jobs.store.clock())
    assert not health.operational and health.reasons[0].component == "shot_folder"
    look(spooler, clock, tree)  # the folder takes files again at the next look
    look(spooler, clock, tree)
    assert read_health(spooler.jobs.read, spooler.jobs.store.clock()).operational
    assert spooler.jobs.read.require("j").state is JobState.RUNNING
    clock.now += tree.lab.resubmit_after_s  # no shot file appeared: submitted again, once
    spooler.step()
    spooler.step()
    assert [g["experiment_name"] for g in lab.engaged()] == ["experiment_0"]


def test_shots_of_ended_jobs_are_taken_out_of_blacss_queue(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    drop(tree, "old.json", good_job(shots=3))
    drop(tree, "live.json", good_job(shots=3))
    spooler.run_once()
    spooler.run_once()
    with spooler.jobs.change() as tx:
        tx.transition("old", JobState.ERROR, error_message="no shot arrived")
    old = tree.folders.shot_folder("old", 1, "experiment_0")
    live = tree.folders.shot_folder("live", 1, "experiment_0")
    lab.blacs = dataclasses.replace(
        lab.blacs, queued=5, queued_folders={str(old): 3, str(live): 2}, head=str(old / "a.h5")
    )
    look(spooler, clock, tree)
    withdrawn = [arg for name, arg in lab.calls if name == "withdraw"]
    assert withdrawn == [([old], False)]


def test_a_machine_that_stopped_being_looked_at_is_not_operational(
    spooler: Spooler, tree: Settings
) -> None:
    spooler.step()
    later = spooler.jobs.store.clock() + 3600
    health = read_health(spooler.jobs.read, later)
    assert not health.operational
    assert health.reasons[-1].component == "spooler"
    assert "is the spooler running?" in health.status_msg


def test_a_quarantined_item_leaves_a_notification(spooler: Spooler, tree: Settings) -> None:
    (tree.folders.dump / "x.json").write_bytes(b"{}")
    spooler.admission.quarantine.put(tree.folders.dump / "x.json", "a test's reason")
    [(kind, title, body)] = notifications(spooler)
    assert kind == "quarantine" and "x.json" in title and "a test's reason" in body


def test_blacs_report_parses_an_older_plugins_hello() -> None:
    report = BlacsReport.parse({"ok": True, "queued": 2, "running": None})
    assert report.queued == 2 and not report.paused and report.devices_in_error == ()


def test_a_job_that_arrives_while_the_machine_is_down_says_why_it_waits(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    lab.reachable = False
    spooler.step()  # the machine is looked at: down
    drop(tree, "late.json", good_job())
    spooler.run_once()
    record = spooler.jobs.read.require("late")
    assert record.state is JobState.QUEUED
    assert record.notes[-1].startswith("Waiting for the machine: runmanager:")
    lab.reachable = True
    look(spooler, clock, tree)
    assert "The machine is operational again" in spooler.jobs.read.require("late").detail


def test_a_withdrawal_that_fails_does_not_stop_the_spooler(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    drop(tree, "old.json", good_job(shots=3))
    spooler.run_once()
    with spooler.jobs.change() as tx:
        tx.transition("old", JobState.ERROR, error_message="no shot arrived")
    old = tree.folders.shot_folder("old", 1, "experiment_0")
    lab.blacs = dataclasses.replace(lab.blacs, queued=3, queued_folders={str(old): 3})

    def broken(folders: object, *, abort: bool) -> None:
        raise RuntimeError("the plugin's answer made no sense")

    lab.withdraw = broken  # type: ignore[method-assign,assignment]
    look(spooler, clock, tree)  # logged, and the next look tries again
    assert read_health(spooler.jobs.read, spooler.jobs.store.clock()).operational


def test_a_shot_that_blacs_runs_for_too_long_holds_the_queue_and_tells(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    spooler.step()
    limit = tree.lab.shot_stuck_after_s
    shot = "/lab/shots/j/experiment_0/20261206T111503_experiment_0_2.h5"
    lab.blacs = dataclasses.replace(lab.blacs, running=shot, running_since=0.0)
    look(spooler, clock, tree)  # first seen running now (BLACS's own clock is not used)
    clock.now += limit
    spooler.step()
    assert read_health(spooler.jobs.read, spooler.jobs.store.clock()).operational, "not yet"
    look(spooler, clock, tree)
    health = read_health(spooler.jobs.read, spooler.jobs.store.clock())
    assert not health.operational
    [reason] = health.reasons
    assert reason.component == "shot_stuck"
    assert "stuck on the shot 20261206T111503_experiment_0_2.h5" in reason.message
    [(kind, _, body)] = notifications(spooler)
    assert kind == "machine_down" and "restart BLACS" in body and "none is failed" in body
    for _ in range(3):  # still stuck: one notification, one reason
        look(spooler, clock, tree)
    assert len(notifications(spooler)) == 1
    # BLACS restarted (a new instance), running the same shot again: seen anew
    lab.blacs = dataclasses.replace(lab.blacs, instance="after-restart")
    look(spooler, clock, tree)
    assert read_health(spooler.jobs.read, spooler.jobs.store.clock()).operational
    assert [n[0] for n in notifications(spooler)] == ["machine_down", "machine_up"]


def test_shots_that_follow_each_other_are_not_stuck(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    spooler.step()
    for index in range(5):  # each shot runs for most of the limit, none for longer
        shot = f"/lab/shots/j/experiment_0/shot_{index}.h5"
        lab.blacs = dataclasses.replace(lab.blacs, running=shot)
        look(spooler, clock, tree)
        clock.now += tree.lab.shot_stuck_after_s - tree.lab.health_interval_s
        spooler.step()
    lab.blacs = dataclasses.replace(lab.blacs, running=None, paused=True)
    look(spooler, clock, tree)  # paused (no shot running): the paused reason only
    health = read_health(spooler.jobs.read, spooler.jobs.store.clock())
    assert [r.component for r in health.reasons] == ["blacs"]
