from __future__ import annotations

import pytest

from spooler.core.errors import LabspoolError
from spooler.core.pause import read_pause
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.pipeline.control import QueueControl
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job
from tests.fakes import Clock, RecordingLab


@pytest.fixture
def control(spooler: Spooler) -> QueueControl:
    return QueueControl(spooler.jobs, "operator@lab")


def queue(spooler: Spooler) -> list[str]:
    return [r.job_id for r in spooler.jobs.read.queue()]


def admit(spooler: Spooler, tree: Settings, *names: str, lab: RecordingLab) -> None:
    """Admit jobs without engaging any (the lab is away meanwhile), then bring the lab back."""
    lab.reachable = False
    for name in names:
        drop(tree, f"{name}.json", good_job())
    spooler.run_once()
    lab.reachable = True
    clock = spooler.clock
    assert isinstance(clock, Clock)
    clock.now += 3600  # past the dispatcher's back-off


def test_move_front_back_and_before_change_the_order(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    admit(spooler, tree, "a", "b", "c", "d", lab=lab)
    assert queue(spooler) == ["a", "b", "c", "d"]
    assert control.move("d", front=True) == 1
    assert queue(spooler) == ["d", "a", "b", "c"]
    control.move("d", back=True)
    assert queue(spooler) == ["a", "b", "c", "d"]
    control.move("d", before="b")
    assert queue(spooler) == ["a", "d", "b", "c"]
    control.move("c", before="a")
    assert queue(spooler) == ["c", "a", "d", "b"]
    # Many moves into the same gap exhaust the float's room; the queue is renumbered.
    for _ in range(60):
        control.move("b", before="d")
        control.move("d", before="b")
    assert queue(spooler) == ["c", "a", "d", "b"]
    drop(tree, "e.json", good_job())
    lab.reachable = False
    spooler.run_once()
    assert queue(spooler) == ["c", "a", "d", "b", "e"], "a later job still queues behind"
    assert "Moved before b of the queue by operator@lab" in spooler.jobs.read.require("d").detail
    assert spooler.jobs.status_files.read("d")["queue_position"] == 3


def test_the_dispatcher_takes_the_moved_job_first(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    admit(spooler, tree, "a", "b", lab=lab)
    control.move("b", front=True)
    spooler.step()
    assert [g["job_id"] for g in lab.engaged()] == ["b"]


def engage_four(spooler: Spooler, tree: Settings) -> None:
    """a runs; b and c are engaged behind it (the look-ahead's 2 jobs); d is queued."""
    for name in "abcd":
        drop(tree, f"{name}.json", good_job())
    spooler.run_once()
    spooler.step()
    spooler.step()
    states = {name: spooler.jobs.read.require(name).state for name in "abcd"}
    assert list(states.values()) == [JobState.RUNNING] * 3 + [JobState.QUEUED]


def test_move_to_the_front_takes_back_the_jobs_engaged_ahead(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    engage_four(spooler, tree)
    assert control.move("d", front=True) == 1
    assert queue(spooler) == ["d", "b", "c"]
    assert spooler.jobs.read.require("a").state is JobState.RUNNING, "the machine's job stays"
    for name in "bc":
        record = spooler.jobs.read.require(name)
        assert (record.attempt, record.lab_action, record.shots_expected) == (2, "withdraw", None)
        assert "Taken back from the lab before any of its shots was made (d was moved ahead" in (
            record.detail
        )
    spooler.step()  # withdraws b and c (attempt 1), engages d
    withdrawn = [arg[0] for name, arg in lab.calls if name == "withdraw"]
    assert withdrawn == [[tree.folders.shot_folder(n, 1, "experiment_0")] for n in "cb"], (
        "the job engaged last first, so that BLACS never starts c once b is out of its queue"
    )
    spooler.step()
    assert [(g["job_id"], g["attempt"]) for g in lab.engaged()] == [
        ("a", 1),
        ("b", 1),
        ("c", 1),
        ("d", 1),
        ("b", 2),
    ]
    assert spooler.jobs.read.require("b").lab_action is None


def test_move_back_takes_back_only_the_engaged_job_moved(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    engage_four(spooler, tree)
    assert control.move("b", back=True) == 3
    assert queue(spooler) == ["d", "b"]
    assert spooler.jobs.read.require("c").state is JobState.RUNNING, "c's shots stay in BLACS"
    assert "moved to the back by operator@lab" in spooler.jobs.read.require("b").detail
    assert control.move("c", before="d") == 1, "an engaged job kept where it is"
    assert spooler.jobs.read.require("c").state is JobState.RUNNING
    spooler.step()  # b's shots are withdrawn; d is engaged behind c
    assert [g["job_id"] for g in lab.engaged()] == ["a", "b", "c", "d"]
    with pytest.raises(LabspoolError, match="a is running"):
        control.move("a", back=True)


def test_an_engaged_job_with_a_shot_made_does_not_move(
    spooler: Spooler, tree: Settings, control: QueueControl
) -> None:
    engage_four(spooler, tree)
    with spooler.jobs.change() as tx:
        tx.set_counts("a", shots_made=3)  # a is made: b is the machine's now
        tx.set_counts("b", shots_made=1)
    with pytest.raises(LabspoolError, match="b is running \\(1 of its shots made\\)"):
        control.move("b", back=True)
    control.move("c", back=True)
    assert queue(spooler) == ["d", "c"]


def test_move_refuses_what_is_not_queued(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    admit(spooler, tree, "a", lab=lab)
    with pytest.raises(LabspoolError, match="not queued"):
        control.move("a", before="zzz")
    with pytest.raises(LabspoolError, match="no job with id"):
        control.move("zzz", front=True)
    with pytest.raises(LabspoolError, match="exactly one"):
        control.move("a", front=True, back=True)


def test_cancel_a_queued_job(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    admit(spooler, tree, "a", "b", lab=lab)
    record = control.cancel("a")
    assert record.state is JobState.CANCELLED and record.lab_action is None
    assert spooler.jobs.status_files.read("a")["detail"].endswith("Cancelled by operator@lab")
    assert spooler.jobs.status_files.read("b")["queue_position"] == 1
    spooler.step()
    assert [g["job_id"] for g in lab.engaged()] == ["b"]
    with pytest.raises(LabspoolError, match="nothing to cancel"):
        control.cancel("a")


def test_cancel_a_running_job_withdraws_its_shots_through_the_spooler(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    drop(tree, "r.json", good_job(shots=3, experiments=2))
    spooler.run_once()
    assert spooler.jobs.read.require("r").state is JobState.RUNNING
    record = control.cancel("r")
    assert record.state is JobState.CANCELLED and record.lab_action == "withdraw"
    spooler.step()
    withdrawals = [arg for name, arg in lab.calls if name == "withdraw"]
    assert withdrawals == [
        (
            [
                tree.folders.shot_folder("r", 1, "experiment_0"),
                tree.folders.shot_folder("r", 1, "experiment_1"),
            ],
            False,
        )
    ]
    after = spooler.jobs.read.require("r")
    assert after.lab_action is None
    assert "Withdrawn from the lab: 2 queued shot(s) taken out of BLACS's queue" in after.detail
    spooler.step()
    assert len([c for c in lab.calls if c[0] == "withdraw"]) == 1, "done once"


def test_a_withdrawal_waits_for_an_unreachable_lab(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl, clock: Clock
) -> None:
    drop(tree, "r.json", good_job())
    spooler.run_once()
    control.cancel("r")
    lab.reachable = False
    spooler.step()
    assert spooler.jobs.read.require("r").lab_action == "withdraw"
    with pytest.raises(LabspoolError, match="not yet withdrawn the shots of attempt 1"):
        control.requeue("r")
    assert "Could not reach the lab to withdraw its shots" in spooler.jobs.read.require("r").detail
    lab.reachable = True
    clock.now += 10
    spooler.step()
    assert spooler.jobs.read.require("r").lab_action is None


def test_a_job_cancelled_while_being_engaged_is_not_engaged_further(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    drop(tree, "r.json", good_job(experiments=3))
    original = lab.engage

    def engage() -> None:
        original()
        if len(lab.engaged()) == 1:
            control.cancel("r")  # the operator, from another process, mid-engagement

    lab.engage = engage  # type: ignore[method-assign]
    spooler.run_once()
    assert [g["experiment_name"] for g in lab.engaged()] == ["experiment_0"]
    spooler.step()
    assert next(arg for name, arg in lab.calls if name == "withdraw")[0] == [
        tree.folders.shot_folder("r", 1, "experiment_0")
    ]


def test_abort_cancels_the_running_jobs_aborts_their_shot_and_pauses(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    for name in "rstu":
        drop(tree, f"{name}.json", good_job())
    spooler.run_once()
    spooler.step()  # r runs, s and t are engaged behind it (the look-ahead), u waits
    spooler.step()
    assert [g["job_id"] for g in lab.engaged()] == ["r", "s", "t"]
    with pytest.raises(LabspoolError, match="not RUNNING"):
        control.abort("u")
    stopped = control.abort()
    assert [(r.job_id, r.state, r.lab_action) for r in stopped] == [
        (name, JobState.CANCELLED, "abort") for name in "rst"
    ]
    pause = read_pause(spooler.jobs.read)
    assert pause is not None and "after aborting r, s, t" in pause.reason
    spooler.step()
    withdrawals = [arg for name, arg in lab.calls if name == "withdraw"]
    assert [(folders, abort) for folders, abort in withdrawals] == [
        ([tree.folders.shot_folder(name, 1, "experiment_0")], True) for name in "tsr"
    ], "the job engaged last first: r's shots stay ahead of s's until s's are out"
    assert "none of its shots was running" in spooler.jobs.read.require("r").detail
    assert spooler.jobs.read.require("u").state is JobState.QUEUED, "paused: u waits"
    assert "Waiting: the spooler is paused by operator@lab" in spooler.jobs.read.require("u").detail
    control.resume()
    spooler.step()
    assert spooler.jobs.read.require("u").state is JobState.RUNNING


def test_requeue_runs_the_job_again_as_a_new_attempt_keeping_its_history(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    lab.refuse_global = "seed"
    doc = good_job(shots=2)
    doc["experiment_0"]["seed"] = 5
    drop(tree, "j.json", doc)
    drop(tree, "k.json", good_job())
    admit(spooler, tree, lab=lab)
    control.move("k", back=True)
    spooler.step()
    assert spooler.jobs.read.require("j").state is JobState.ERROR
    with pytest.raises(LabspoolError, match="only ERROR or CANCELLED"):
        control.requeue("k")
    lab.refuse_global = None
    record = control.requeue("j")
    assert record.state is JobState.QUEUED and record.attempt == 2
    assert record.error_message is None and record.shots_expected is None
    assert spooler.jobs.read.queue_positions()["j"] == 2, "requeued at the back"
    (again,) = spooler.jobs.read.experiments("j", 2)
    assert (again.name, again.shots_requested, again.submitted_at) == ("experiment_0", 2, None)
    status = spooler.jobs.status_files.read("j")
    assert [(h["attempt"], h["status"]) for h in status["history"]] == [
        (1, "INITIALIZING"),
        (1, "QUEUED"),
        (1, "ERROR"),
        (2, "QUEUED"),
    ]
    assert "Requeued by operator@lab as attempt 2" in status["detail"]
    spooler.step()  # k
    control.cancel("k")
    spooler.step()  # withdraw k, engage j
    engaged = lab.engaged()[-1]
    assert engaged["job_id"] == "j" and engaged["attempt"] == 2
    outputs = [arg for name, arg in lab.calls if name == "set_shot_output_folder"]
    assert outputs[-1] == tree.folders.shots / "j" / "attempt-2" / "experiment_0"


def test_requeue_refuses_a_job_that_was_never_accepted(
    spooler: Spooler, tree: Settings, control: QueueControl
) -> None:
    drop(tree, "bad.json", b"{not json")
    spooler.run_once()
    (bad,) = spooler.jobs.read.jobs(JobState.ERROR)
    with pytest.raises(LabspoolError, match="never accepted"):
        control.requeue(bad.job_id)


def test_pause_survives_a_restart_and_resume_lifts_it(
    tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    first = Spooler(tree, lab=lab, clock=clock)
    QueueControl(first.jobs, "op@lab").pause(reason="laser realignment")
    first.close()
    drop(tree, "a.json", good_job())
    second = Spooler(tree, lab=lab, clock=clock)
    try:
        second.run_once()
        assert lab.engaged() == []
        detail = second.jobs.read.require("a").detail
        assert "Waiting: the spooler is paused by op@lab" in detail
        assert detail.endswith("laser realignment")
        QueueControl(second.jobs, "op@lab").resume()
        second.step()
        assert [g["job_id"] for g in lab.engaged()] == ["a"]
    finally:
        second.close()


def test_a_running_job_is_finished_while_paused(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl, clock: Clock
) -> None:
    drop(tree, "a.json", good_job(experiments=2))
    lab.fail_engage_times = 0
    original = lab.engage

    def engage() -> None:
        original()
        control.pause()  # paused after the first experiment went out

    lab.engage = engage  # type: ignore[method-assign]
    spooler.run_once()
    assert [g["experiment_name"] for g in lab.engaged()] == ["experiment_0", "experiment_1"]


def test_a_scheduled_stop_starts_only_jobs_that_finish_before_it(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl, clock: Clock
) -> None:
    drop(tree, "first.json", good_job(shots=3))
    spooler.run_once()
    for done in range(1, 4):  # the first job takes 30 s: 10 s a shot on this machine
        clock.now += 10
        with spooler.jobs.change() as tx:
            tx.set_counts("first", shots_made=done, shots_done=done)
    with spooler.jobs.change() as tx:
        tx.transition("first", JobState.DONE)
    drop(tree, "second.json", good_job(shots=3))
    now = spooler.jobs.store.clock()
    control.pause(at=now + 20)
    spooler.run_once()
    detail = spooler.jobs.read.require("second").detail
    assert "Waiting: a stop is scheduled for" in detail and "would finish at about" in detail
    assert [g["job_id"] for g in lab.engaged()] == ["first"]
    for _ in range(3):  # waiting on: the estimated finish moves, the note is not repeated
        clock.now += 1
        spooler.step()
    notes = spooler.jobs.read.require("second").notes
    assert sum(n.startswith("Waiting: a stop is scheduled") for n in notes) == 1, notes
    control.pause(at=now + 40)
    spooler.step()
    assert [g["job_id"] for g in lab.engaged()] == ["first", "second"]


def test_a_queue_key_of_zero_is_a_key(
    spooler: Spooler, tree: Settings, lab: RecordingLab, control: QueueControl
) -> None:
    admit(spooler, tree, "a", "b", "c", lab=lab)
    with spooler.jobs.change() as tx:
        tx.set_queue_key("b", 0.0)  # as a requeue to the front of a queue whose head has 1.0
    assert queue(spooler) == ["b", "a", "c"]
    control.move("c", front=True)
    assert queue(spooler) == ["c", "b", "a"]
