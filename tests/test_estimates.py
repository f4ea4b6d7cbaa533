from __future__ import annotations

from pathlib import Path

import pytest

from spooler.estimates import duration_model, estimate_jobs
from spooler.pause import PauseState, write_pause
from spooler.states import JobState
from spooler.store import JobStore
from tests.fakes import Clock


def run_job(store: JobStore, clock: Clock, job_id: str, shots: int, seconds: float) -> None:
    """A job through QUEUED -> RUNNING -> DONE taking *seconds*."""
    queue_job(store, job_id, shots)
    with store.transaction() as tx:
        tx.transition(job_id, JobState.RUNNING)
        tx.set_counts(job_id, shots_expected=shots)
    clock.now += seconds
    with store.transaction() as tx:
        tx.set_counts(job_id, shots_done=shots)
        tx.transition(job_id, JobState.DONE)
    clock.now += 1


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


def test_the_model_separates_overhead_from_shots(store: JobStore, clock: Clock) -> None:
    for n, shots in enumerate((10, 20, 40, 10)):
        run_job(store, clock, f"j{n}", shots, 5.0 + 0.5 * shots)
    model = duration_model(store.read, "singlequdit")
    assert model is not None and model.samples == 4
    assert model.overhead_s == pytest.approx(5.0)
    assert model.per_shot_s == pytest.approx(0.5)
    assert duration_model(store.read, "fermions") is None


def test_one_job_size_puts_the_whole_time_on_the_shots(store: JobStore, clock: Clock) -> None:
    for n in range(3):
        run_job(store, clock, f"j{n}", 20, 12.0)
    model = duration_model(store.read, "singlequdit")
    assert model is not None
    assert model.duration_s(20) == pytest.approx(12.0)


def test_the_queue_is_estimated_one_job_after_another(store: JobStore, clock: Clock) -> None:
    for n in range(3):
        run_job(store, clock, f"done{n}", 10, 10.0)  # 1 s per shot
    queue_job(store, "running", 10)
    with store.transaction() as tx:
        tx.transition("running", JobState.RUNNING)
        tx.set_counts("running", shots_expected=10, shots_done=4)
    start = clock.now
    queue_job(store, "next", 20)
    queue_job(store, "last", 5)
    clock.now += 4
    estimates = estimate_jobs(store.read, clock.now)
    assert estimates["running"].elapsed_s == pytest.approx(4.0)
    assert estimates["running"].finish == pytest.approx(start + 10)
    assert estimates["next"].start == pytest.approx(start + 10)
    assert estimates["next"].finish == pytest.approx(start + 30)
    assert estimates["last"].start == pytest.approx(start + 30)
    assert estimates["last"].finish == pytest.approx(start + 35)
    with store.transaction() as tx:
        tx.set_counts("running", shots_expected=5)  # one experiment of two submitted so far
    assert estimate_jobs(store.read, clock.now)["running"].finish == pytest.approx(start + 10)
    with store.transaction() as tx:
        tx.set_counts("running", shots_expected=10)
    clock.now += 20  # the running job is late: 6 shots to go still take 6 s from now
    late = estimate_jobs(store.read, clock.now)
    assert late["running"].finish == pytest.approx(clock.now + 6)
    with store.transaction() as tx:
        write_pause(tx, PauseState(clock.now, "op@lab"))
    paused = estimate_jobs(store.read, clock.now)
    assert paused["next"].start is None and paused["running"].finish is not None


def test_a_scheduled_stop_allows_only_jobs_that_finish_before_it() -> None:
    pause = PauseState(since=0.0, by="op", at=100.0)
    assert pause.allows(10.0, 90.0)
    assert not pause.allows(10.0, 110.0)
    assert not pause.allows(10.0, None)
    assert not pause.allows(100.0, 100.0), "at the time itself it is a full stop"
    assert not PauseState(since=0.0, by="op").allows(10.0, 11.0)
