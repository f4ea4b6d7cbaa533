"""The result daemon's decisions that need no shot analysis (lyse runs in the lab tests)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from result.addresses import Address, BadAddress, read_address
from result.daemon import ResultDaemon
from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def running_job(settings: Settings, job_id: str, shots: dict[str, int], at: float) -> None:
    jobs = Jobs(settings.folders, clock=lambda: at)
    try:
        with jobs.change() as tx:
            tx.add_job(
                job_id=job_id, backend="singlequdit", source_name=f"{job_id}.json", claim_name="x"
            )
            tx.transition(job_id, JobState.QUEUED)
            for name, count in shots.items():
                tx.add_experiment(job_id, 1, name, count)
                tx.experiment_submitted(job_id, 1, name, count)
                tx.experiment_engaged(job_id, 1, name)
            tx.transition(job_id, JobState.RUNNING)
    finally:
        jobs.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000_000.0)


@pytest.fixture
def daemon(tree: Settings, clock: Clock) -> Iterator[ResultDaemon]:
    d = ResultDaemon(tree, wall_clock=clock)
    yield d
    d.close()


def test_shots_that_never_come_end_the_job_with_what_is_missing(
    tree: Settings, daemon: ResultDaemon, clock: Clock
) -> None:
    running_job(tree, "j", {"experiment_0": 3, "experiment_1": 2}, at=clock.now)
    clock.now += tree.result.shots_timeout_s - 1
    daemon.step()
    assert daemon.jobs.read.require("j").state is JobState.RUNNING
    clock.now += 2
    daemon.step()
    record = daemon.jobs.read.require("j")
    assert record.state is JobState.ERROR
    assert "missing: 3 of experiment_0, 2 of experiment_1" in str(record.error_message)
    assert daemon.jobs.status_files.read("j")["status"] == "ERROR"


def test_a_job_engaged_ahead_does_not_time_out_while_the_machine_makes_other_shots(
    tree: Settings, daemon: ResultDaemon, clock: Clock
) -> None:
    running_job(tree, "front", {"experiment_0": 50}, at=clock.now)
    running_job(tree, "behind", {"experiment_0": 2}, at=clock.now)  # engaged ahead
    clock.now += tree.result.shots_timeout_s - 1
    with daemon.jobs.change() as tx:  # a shot of the job in front, received just now
        tx.execute(
            "INSERT INTO shots (address, job_id, attempt, experiment, shot_index, local_path, "
            "state, received_at) VALUES ('front__0', 'front', 1, 'experiment_0', 0, '/x.h5', "
            "'archived', ?)",
            (clock.now,),
        )
    clock.now += 2
    daemon.step()
    assert daemon.jobs.read.require("behind").state is JobState.RUNNING
    clock.now += tree.result.shots_timeout_s
    daemon.step()
    behind = daemon.jobs.read.require("behind")
    assert behind.state is JobState.ERROR
    assert "missing: 2 of experiment_0" in str(behind.error_message)


def test_the_shots_time_out_counts_only_time_the_machine_was_operational(
    tree: Settings, daemon: ResultDaemon, clock: Clock
) -> None:
    running_job(tree, "j", {"experiment_0": 3}, at=clock.now)
    down_at = clock.now + 10
    with daemon.jobs.store.transaction() as tx:
        tx.set_health(operational=False, reasons="[]", since=down_at)
    clock.now += 10 * tree.result.shots_timeout_s  # down all that time: the machine's fault
    daemon.step()
    assert daemon.jobs.read.require("j").state is JobState.RUNNING
    back_at = clock.now
    with daemon.jobs.store.transaction() as tx:
        tx.set_health(operational=True, reasons="[]", since=back_at)
    clock.now = back_at + tree.result.shots_timeout_s - 1  # counted from its return
    daemon.step()
    assert daemon.jobs.read.require("j").state is JobState.RUNNING
    clock.now += 2
    daemon.step()
    record = daemon.jobs.read.require("j")
    assert record.state is JobState.ERROR
    assert "missing: 3 of experiment_0" in str(record.error_message)


def test_a_second_result_daemon_on_the_same_tree_is_refused(
    tree: Settings, daemon: ResultDaemon
) -> None:
    from spooler.core.errors import SpoolerBusy

    with pytest.raises(SpoolerBusy, match="another result daemon"):
        ResultDaemon(tree)


def _address(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(content))
    return path


def _read(tree: Settings, path: Path) -> Address:
    jobs = Jobs(tree.folders)
    try:
        return read_address(path, jobs.read, tree.folders, max_bytes=65536)
    finally:
        jobs.close()


def test_an_address_is_checked(tree: Settings, tmp_path: Path) -> None:
    running_job(tree, "j", {"experiment_1": 5}, at=1.7e9)
    shot = tree.folders.shot_folder("j", 1, "experiment_1") / "x.h5"
    shot.parent.mkdir(parents=True)
    shot.write_bytes(b"")
    good = _read(
        tree,
        _address(
            tmp_path,
            {"shot": str(shot), "job_id": "j", "experiment": "experiment_1", "shot_index": 4},
        ),
    )
    assert (good.shot, good.job_id, good.experiment, good.shot_index, good.attempt) == (
        shot,
        "j",
        "experiment_1",
        4,
        1,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([], "not a JSON object"),
        ({"shot": 5}, "names no shot"),
        ({"shot": "/x.h5", "job_id": "../../etc"}, "names no labspool job"),
        ({"shot": "/x.h5", "job_id": "j", "experiment": "experiment_1/.."}, "no experiment"),
        (
            {"shot": "/x.h5", "job_id": "j", "experiment": "experiment_1", "shot_index": True},
            "index",
        ),
        ({"shot": "/x.h5", "job_id": "k", "experiment": "experiment_1", "shot_index": 1}, "know"),
        ({"shot": "rel/x.h5", "job_id": "j", "experiment": "experiment_1", "shot_index": 1}, "abs"),
        ({"shot": "/x.h5", "job_id": "j", "experiment": "experiment_1", "shot_index": 1}, "folder"),
        ("text", "not a JSON object"),
    ],
)
def test_bad_addresses_are_refused(
    tree: Settings, tmp_path: Path, content: object, message: str
) -> None:
    running_job(tree, "j", {"experiment_1": 5}, at=1.7e9)
    with pytest.raises(BadAddress, match=message):
        _read(tree, _address(tmp_path, content))


def test_an_unreadable_address_is_quarantined_with_its_reason(
    tree: Settings, daemon: ResultDaemon
) -> None:
    (tree.folders.addresses / "bad.json").write_text("{not json")
    daemon.run_once()
    assert not list(daemon.claimed.iterdir())
    assert not list(tree.folders.processed.iterdir())
    assert (tree.folders.quarantine / "bad.json").read_text() == "{not json"
    (reason,) = daemon.quarantine.reasons()
    assert reason["item"] == "bad.json"
    assert "the address file is not valid JSON" in str(reason["reason"])


def test_an_address_that_arrives_during_a_step_wakes_the_loop(tree: Settings) -> None:
    """The loop must not sleep until the next rescan (an hour here) on an event that came
    while it was busy."""
    settings = dataclasses.replace(
        tree, intake=dataclasses.replace(tree.intake, rescan_interval_s=3600.0)
    )
    daemon = ResultDaemon(settings)
    ready, injected, stepped_after = threading.Event(), threading.Event(), threading.Event()
    step = daemon.step

    def step_with_an_arrival() -> int:
        done = step()
        if ready.is_set() and not injected.is_set():
            (settings.folders.addresses / "arrived.json").write_text("{}")
            assert daemon.addresses.wake.wait(10), "the watcher saw the new address"
            injected.set()
        elif injected.is_set():
            stepped_after.set()
        return done

    daemon.step = step_with_an_arrival  # type: ignore[method-assign]
    thread = threading.Thread(target=daemon.run, kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(30)
        assert injected.wait(30)
        assert stepped_after.wait(5), "the event during the step was lost until the rescan"
    finally:
        daemon.request_stop()
        thread.join(30)
        daemon.close()
    assert not thread.is_alive()


def test_a_job_that_cannot_be_finished_ends_error_and_the_others_go_on(
    tree: Settings, daemon: ResultDaemon, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    running_job(tree, "a", {"experiment_0": 0}, at=clock.now)  # complete at once
    running_job(tree, "b", {"experiment_0": 2}, at=clock.now)

    def broken(*args: object) -> None:
        raise RuntimeError("the CSV writer broke")

    monkeypatch.setattr(daemon.finisher, "write_outputs", broken)
    clock.now += tree.result.shots_timeout_s + 1
    daemon.step()
    a, b = daemon.jobs.read.require("a"), daemon.jobs.read.require("b")
    assert a.state is JobState.ERROR
    assert a.error_message == (
        "internal error while finishing the job: RuntimeError: the CSV writer broke"
    )
    assert b.state is JobState.ERROR and "missing: 2 of experiment_0" in str(b.error_message)


def test_every_shot_made_is_received_at_once_whatever_the_executors_room(
    tree: Settings, daemon: ResultDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spooler's look-ahead goes by the shots the result daemon has received: a slow
    analysis (a full window of tasks) must not hold that count back and idle the machine."""
    shots = 40
    running_job(tree, "slow", {"experiment_0": shots}, at=1.7e9)
    folder = tree.folders.shot_folder("slow", 1, "experiment_0")
    folder.mkdir(parents=True)
    for i in range(shots):
        shot = folder / f"s_{i:02d}.h5"
        shot.write_bytes(b"")
        record = {"shot": str(shot), "job_id": "slow", "experiment": "experiment_0"}
        address = tree.folders.addresses / f"slow__experiment_0__{i:05d}.json"
        address.write_text(json.dumps({**record, "shot_index": i, "attempt": 1}))
    started: list[str] = []
    monkeypatch.setattr(daemon, "executor_capacity", lambda: 1)  # one shot in flight at most

    def start(path: Path) -> None:
        started.append(path.name)
        # in flight, never back
        daemon.shots.flights[path.name] = None  # type: ignore[assignment]

    monkeypatch.setattr(daemon.intake, "start", start)
    while daemon._pass(look=True):
        pass
    assert len(started) == 1, "one task in flight"
    assert daemon.jobs.read.require("slow").shots_made == shots, "every shot received"


def test_a_shot_archived_before_a_crash_is_tidied_first_whatever_the_executors_room(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between the ledger's 'archived' and the removal of the local copy: at the next
    start that shot needs no room in the executor, and it is tidied before the job's end is
    checked, so a job never ends DONE with a local copy of a shot still there."""
    from spooler.core.store.shots import Ledger

    shots = 5
    running_job(tree, "crash", {"experiment_0": shots}, at=1.7e9)
    folder = tree.folders.shot_folder("crash", 1, "experiment_0")
    folder.mkdir(parents=True)
    daemon = ResultDaemon(tree)  # (its ledger made)
    try:
        with daemon.jobs.change() as tx:
            for i in range(shots):
                shot = folder / f"s_{i:02d}.h5"
                shot.write_bytes(b"")
                name = f"crash__experiment_0__{i:05d}.json"
                record = {"shot": str(shot), "job_id": "crash", "experiment": "experiment_0"}
                (tree.folders.result_claimed / name).write_text(
                    json.dumps({**record, "shot_index": i, "attempt": 1})
                )
                Ledger.claim(
                    tx, name, job_id="crash", attempt=1, experiment="experiment_0",
                    shot_index=i, local_path=str(shot),
                )  # fmt: skip
            # the last one (last in the folder's order) was archived, then the daemon killed
            Ledger.archived(
                tx, name, sds_path=str(tree.folders.sds / "s_04.h5"), size=0, sha256="0" * 64,
                frame=b"", memory=None, error=None, routines=None,
            )  # fmt: skip
        started: list[str] = []
        monkeypatch.setattr(daemon, "executor_capacity", lambda: 1)
        real_start = daemon.intake.start

        def start(path: Path) -> None:
            if path.name == name:
                real_start(path)
                return
            started.append(path.name)
            daemon.shots.flights[path.name] = None  # type: ignore[assignment]  # never back

        monkeypatch.setattr(daemon.intake, "start", start)
        daemon._pass(look=True)
        assert len(started) == 1, "one task in flight: the executor is full"
        assert not (folder / "s_04.h5").exists(), "the archived shot's local copy is removed"
        assert (tree.folders.processed / name).exists(), "and its address filed"
        assert not (tree.folders.result_claimed / name).exists()
    finally:
        daemon.close()
