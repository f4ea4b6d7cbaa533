from __future__ import annotations

from pathlib import Path

import pytest

from spooler.core.estimates import IDLE_POLL_S, duration_model, estimate_jobs
from spooler.core.pause import PauseState, write_pause
from spooler.core.states import JobState
from spooler.core.store import JobStore
from tests.fakes import Clock


def run_job(
    store: JobStore,
    clock: Clock,
    job_id: str,
    shots: int,
    *,
    lead: float = 1.0,
    per_shot: float = 1.0,
    tail: float = 0.0,
) -> None:
    """A job through QUEUED -> RUNNING -> DONE, its shots counted one by one."""
    queue_job(store, job_id, shots)
    with store.transaction() as tx:
        tx.transition(job_id, JobState.RUNNING)
        tx.set_counts(job_id, shots_expected=shots)
    clock.now += lead
    count_shots(store, clock, job_id, range(1, shots + 1), per_shot)
    clock.now += tail - per_shot
    with store.transaction() as tx:
        tx.transition(job_id, JobState.DONE)
    clock.now += 1


def count_shots(store: JobStore, clock: Clock, job_id: str, counts: range, per_shot: float) -> None:
    for done in counts:
        with store.transaction() as tx:
            tx.set_counts(job_id, shots_made=done, shots_done=done)
        clock.now += per_shot


def queue_job(store: JobStore, job_id: str, shots: int) -> None:
    with store.transaction() as tx:
        tx.add_job(job_id=job_id, backend="singlequdit", source_name=job_id, claim_name=job_id)
        tx.transition(job_id, JobState.QUEUED)
        tx.set_counts(job_id, experiments=1, shots_requested=shots)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> JobStore:
    return JobStore(tmp_path / "db", clock=clock)


def test_no_finished_job_no_estimate(store: JobStore, clock: Clock) -> None:
    queue_job(store, "q", 10)
    assert duration_model(store.read, "singlequdit") is None
    estimate = estimate_jobs(store.read, clock.now)["q"]
    assert estimate.start is None and estimate.finish is None


def test_the_model_measures_lead_shots_and_tail(store: JobStore, clock: Clock) -> None:
    for n, shots in enumerate((10, 20, 40, 10)):
        run_job(store, clock, f"j{n}", shots, lead=3.0, per_shot=0.5, tail=1.0)
    model = duration_model(store.read, "singlequdit")
    assert model is not None and model.samples == 4
    assert (model.lead_s, model.per_shot_s, model.tail_s) == pytest.approx((3.0, 0.5, 1.0))
    assert model.duration_s(10) == pytest.approx(3.0 + 0.5 * 9 + 1.0)
    assert duration_model(store.read, "fermions") is None


def test_one_slow_job_does_not_move_the_model(store: JobStore, clock: Clock) -> None:
    for n in range(4):
        run_job(store, clock, f"j{n}", 20, lead=2.0, per_shot=0.5, tail=1.0)
    run_job(store, clock, "slow", 20, lead=20.0, per_shot=5.0, tail=10.0)
    model = duration_model(store.read, "singlequdit")
    assert model is not None
    assert (model.lead_s, model.per_shot_s, model.tail_s) == pytest.approx((2.0, 0.5, 1.0))


def test_one_shot_jobs_measure_a_shot_by_the_first(store: JobStore, clock: Clock) -> None:
    for n in range(3):
        run_job(store, clock, f"j{n}", 1, lead=4.0, tail=1.0)
    model = duration_model(store.read, "singlequdit")
    assert model is not None
    assert model.per_shot_s == pytest.approx(4.0)
    assert model.duration_s(1) == pytest.approx(5.0)


def test_a_requeued_job_measures_its_new_attempt(store: JobStore, clock: Clock) -> None:
    queue_job(store, "again", 5)
    with store.transaction() as tx:
        tx.transition("again", JobState.RUNNING)
    count_shots(store, clock, "again", range(1, 3), 7.0)
    with store.transaction() as tx:
        tx.transition("again", JobState.CANCELLED)
        tx.transition("again", JobState.QUEUED)
    record = store.read.get("again")
    assert record is not None and record.first_shot_at is None and record.last_shot_at is None
    with store.transaction() as tx:
        tx.transition("again", JobState.RUNNING)
    clock.now += 1.0
    count_shots(store, clock, "again", range(1, 6), 0.5)
    with store.transaction() as tx:
        tx.transition("again", JobState.DONE)
    model = duration_model(store.read, "singlequdit")
    assert model is not None and model.per_shot_s == pytest.approx(0.5)


def test_the_queue_is_estimated_one_job_after_another(store: JobStore, clock: Clock) -> None:
    for n in range(3):
        run_job(store, clock, f"done{n}", 10)  # 1 s to the first shot, then 1 s per shot
    queue_job(store, "running", 10)
    with store.transaction() as tx:
        tx.transition("running", JobState.RUNNING)
        tx.set_counts("running", shots_expected=10)
    start = clock.now
    clock.now += 1
    count_shots(store, clock, "running", range(1, 5), 1.0)  # at start + 1 ... start + 4
    queue_job(store, "next", 20)
    queue_job(store, "last", 5)
    clock.now -= 1
    estimates = estimate_jobs(store.read, clock.now)
    assert estimates["running"].elapsed_s == pytest.approx(4.0)
    assert estimates["running"].finish == pytest.approx(start + 10)
    # a queued job's start is its first shot: the lead after the running one's last
    assert estimates["next"].start == pytest.approx(start + 11)
    assert estimates["next"].finish == pytest.approx(start + 30)
    assert estimates["last"].start == pytest.approx(start + 31)
    assert estimates["last"].finish == pytest.approx(start + 35)
    with store.transaction() as tx:
        tx.set_counts("running", shots_expected=5)  # one experiment of two submitted so far
    assert estimate_jobs(store.read, clock.now)["running"].finish == pytest.approx(start + 10)
    with store.transaction() as tx:
        tx.set_counts("running", shots_expected=10)
    clock.now += 20  # late: of the 6 shots to go the next is due now, the 5 after take 5 s
    late = estimate_jobs(store.read, clock.now)
    assert late["running"].finish == pytest.approx(clock.now + 5)
    with store.transaction() as tx:
        write_pause(tx, PauseState(clock.now, "op@lab"))
    paused = estimate_jobs(store.read, clock.now)
    assert paused["next"].start is None and paused["running"].finish is not None


def run_pipelined(store: JobStore, clock: Clock, names: list[str], shots: int) -> None:
    """Jobs engaged ahead: the first makes its first shot 1 s after it runs; each next one
    runs 3 s before the last shot of the one before and makes its first shot 0.2 s after
    it; a shot a second; DONE 2 s after the last shot."""
    for name in names:
        queue_job(store, name, shots)
    events: list[tuple[float, int, str, int]] = []  # (time, order, job, shots made; -1 RUNNING)
    first = clock.now + 1.0
    for name in names:
        last = first + shots - 1
        events.append((first - (1.0 if name == names[0] else 3.2), 0, name, -1))
        events += [(first + k, 1, name, k + 1) for k in range(shots)]
        events.append((last + 2.0, 2, name, 0))
        first = last + 0.2
    for at, _, name, made in sorted(events):
        clock.now = at
        with store.transaction() as tx:
            if made == -1:
                tx.transition(name, JobState.RUNNING)
                tx.set_counts(name, shots_expected=shots)
            elif made:
                tx.set_counts(name, shots_made=made, shots_done=made)
            else:
                tx.transition(name, JobState.DONE)
    clock.now += 1.0


def test_jobs_engaged_ahead_measure_the_gap_between_jobs(store: JobStore, clock: Clock) -> None:
    run_pipelined(store, clock, [f"p{n}" for n in range(5)], 10)
    model = duration_model(store.read, "singlequdit")
    assert model is not None and model.samples == 5
    assert model.gap_s == pytest.approx(0.2)
    # the first one was engaged on an idle machine, a cold one (the first shot this store
    # saw): no warm idle start measured, the lead is a gap and half of BLACS's poll
    assert model.lead_s == pytest.approx(0.2 + IDLE_POLL_S / 2)
    assert (model.per_shot_s, model.tail_s) == pytest.approx((1.0, 2.0))
    # a running job with 4 shots to go, one engaged behind it, one queued
    queue_job(store, "now", 10)
    queue_job(store, "ahead", 10)
    queue_job(store, "queued", 3)
    with store.transaction() as tx:
        tx.transition("now", JobState.RUNNING)
        tx.set_counts("now", shots_expected=10)
    clock.now += 1.0
    count_shots(store, clock, "now", range(1, 7), 1.0)
    last_shot = clock.now - 1.0
    with store.transaction() as tx:
        tx.transition("ahead", JobState.RUNNING)
        tx.set_counts("ahead", shots_expected=10)
    estimates = estimate_jobs(store.read, clock.now)
    assert estimates["now"].finish == pytest.approx(last_shot + 4 + 2.0)
    ahead_first = last_shot + 4 + 0.2
    assert estimates["ahead"].finish == pytest.approx(ahead_first + 9 + 2.0)
    queued_first = ahead_first + 9 + 0.2
    assert estimates["queued"].start == pytest.approx(queued_first)
    assert estimates["queued"].finish == pytest.approx(queued_first + 2 + 2.0)


def test_a_cold_lab_does_not_set_the_lead_of_a_warm_one(store: JobStore, clock: Clock) -> None:
    """The first job of a lab is slow to its first shot (labscript imported, devices
    programmed): after pipelined jobs, one warm idle start says what the next one takes."""
    run_pipelined(store, clock, [f"p{n}" for n in range(5)], 10)  # p0: cold, 1 s
    run_job(store, clock, "warm", 10, lead=1.5)
    model = duration_model(store.read, "singlequdit")
    assert model is not None and model.lead_s == pytest.approx(1.5)
    # a store of one job: its lead is all there is
    alone = JobStore(store.path.parent / "alone", clock=clock)
    run_job(alone, clock, "only", 10, lead=5.0)
    model = duration_model(alone.read, "singlequdit")
    assert model is not None and model.lead_s == pytest.approx(5.0)


def test_a_running_job_is_estimated_at_its_own_rate_too(store: JobStore, clock: Clock) -> None:
    for n in range(3):
        run_job(store, clock, f"done{n}", 30)  # the model: 1 s per shot
    queue_job(store, "slower", 30)
    with store.transaction() as tx:
        tx.transition("slower", JobState.RUNNING)
        tx.set_counts("slower", shots_expected=30)
    count_shots(store, clock, "slower", range(1, 12), 2.0)  # 10 intervals of 2 s
    last_shot = clock.now - 2.0
    finish = estimate_jobs(store.read, last_shot)["slower"].finish
    # 19 shots to go at (10 x 2 s + 10 x 1 s) / 20 = 1.5 s each
    assert finish == pytest.approx(last_shot + 19 * 1.5)


def test_a_scheduled_stop_allows_only_jobs_that_finish_before_it() -> None:
    pause = PauseState(since=0.0, by="op", at=100.0)
    assert pause.allows(10.0, 90.0)
    assert not pause.allows(10.0, 110.0)
    assert not pause.allows(10.0, None)
    assert not pause.allows(100.0, 100.0), "at the time itself it is a full stop"
    assert not PauseState(since=0.0, by="op").allows(10.0, 11.0)
