"""The store's queries behind the live page (a user's jobs through an index, a page of the
queue, where a job stands and what is ahead of it) and the estimates of a page's jobs alone,
which must be those of walking the whole queue."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import spooler.core.store.reader
from spooler.core.estimates import Estimate, estimate_jobs, estimate_shown
from spooler.core.pause import PauseState, write_pause
from spooler.core.states import JobState
from spooler.core.store import JobStore, QueuePlace
from tests.fakes import Clock

BACKEND = "singlequdit"


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> JobStore:
    return JobStore(tmp_path / "db", clock=clock)


def queue(
    store: JobStore,
    job_id: str,
    shots: int | None,
    user: str | None = None,
    backend: str = BACKEND,
    key: float | None = None,
) -> None:
    with store.transaction() as tx:
        tx.add_job(
            job_id=job_id, backend=backend, source_name=job_id, claim_name=job_id, submitter=user
        )
        if shots is not None:
            tx.set_counts(job_id, experiments=1, shots_requested=shots)
        tx.transition(job_id, JobState.QUEUED)
        if key is not None:
            tx.set_queue_key(job_id, key)


def run(store: JobStore, clock: Clock, job_id: str, shots: int, made: int, user: str = "u") -> None:
    """A job RUNNING that made *made* of its *shots* shots (1 s after it ran, 0.5 s apart)."""
    queue(store, job_id, shots, user)
    with store.transaction() as tx:
        tx.transition(job_id, JobState.RUNNING)
        tx.set_counts(job_id, shots_expected=shots)
    clock.now += 1.0
    for count in range(1, made + 1):
        with store.transaction() as tx:
            tx.set_counts(job_id, shots_made=count, shots_done=count)
        clock.now += 0.5


def finish(store: JobStore, clock: Clock, job_id: str) -> None:
    clock.now += 2.0
    with store.transaction() as tx:
        tx.transition(job_id, JobState.DONE)


def plan(store: JobStore, sql: str, parameters: tuple[object, ...]) -> str:
    rows = store.read.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


def test_a_users_jobs_are_found_through_the_index(store: JobStore) -> None:
    for n in range(6):
        queue(store, f"q{n}", 10, ("alice", "bob")[n % 2])
    counts = "SELECT state, COUNT(*) FROM jobs WHERE submitter = ? AND state IN ('QUEUED') "
    page = "SELECT job_id FROM jobs WHERE state = 'QUEUED' AND submitter = ? ORDER BY queue_key"
    for sql in (counts + "GROUP BY state", page + ", seq LIMIT 5 OFFSET 0"):
        assert "INDEX jobs_by_state_submitter (state=? AND submitter=?)" in plan(
            store, sql, ("alice",)
        )
    assert "COVERING INDEX" in plan(store, counts + "GROUP BY state", ("alice",))
    assert "TEMP B-TREE" not in plan(store, page + ", seq", ("alice",))  # in queue order
    everybody = "SELECT state, submitter, COUNT(*) FROM jobs WHERE state IN ('QUEUED', "
    everybody += "'RUNNING') GROUP BY state, submitter"
    assert "COVERING INDEX jobs_by_state_submitter" in plan(store, everybody, ())
    model_sql = "SELECT MAX(last_shot_at) FROM jobs WHERE last_shot_at < ?"
    assert "jobs_by_last_shot" in plan(store, model_sql, (1.0,))


def test_an_older_store_gains_the_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    JobStore(path).close()
    old = sqlite3.connect(path)
    old.executescript("DROP INDEX jobs_by_state_submitter; DROP INDEX jobs_by_last_shot;")
    old.close()
    store = JobStore(path)
    try:
        names = {r[0] for r in store.read.execute("SELECT name FROM sqlite_master")}
        assert {"jobs_by_state_submitter", "jobs_by_last_shot"} <= names
    finally:
        store.close()


def test_counts_and_pages_of_the_active_jobs(store: JobStore, clock: Clock) -> None:
    run(store, clock, "r", 10, 2, user="bob")
    for n in range(5):
        queue(store, f"q{n}", 10, ("alice", "bob", None)[n % 3])
    queue(store, "first", 10, "bob", key=-1.0)  # moved to the front
    with store.transaction() as tx:
        tx.add_job(job_id="new", backend=BACKEND, source_name="n", claim_name="n", submitter="bob")
    read = store.read
    assert read.active_counts() == {
        (JobState.RUNNING, "bob"): 1,
        (JobState.QUEUED, "alice"): 2,
        (JobState.QUEUED, "bob"): 3,
        (JobState.QUEUED, None): 1,
        (JobState.INITIALIZING, "bob"): 1,
    }
    assert read.active_counts("alice") == {(JobState.QUEUED, "alice"): 2}
    assert read.active_counts("nobody") == {}
    ids = [r.job_id for r in read.jobs_page(JobState.QUEUED, 0, 100)]
    assert ids == ["first", "q0", "q1", "q2", "q3", "q4"] == [r.job_id for r in read.queue()]
    assert [r.job_id for r in read.jobs_page(JobState.QUEUED, 2, 3)] == ["q1", "q2", "q3"]
    assert [r.job_id for r in read.jobs_page(JobState.QUEUED, 1, 5, "bob")] == ["q1", "q4"]
    assert [r.job_id for r in read.jobs_page(JobState.INITIALIZING, 0, 5, "bob")] == ["new"]
    initializing = JobState.INITIALIZING
    assert read.jobs_page(initializing, 0, 5, "alice") == read.jobs_page(initializing, 1, 5) == []


@pytest.mark.parametrize("chunk", [200, 2])
def test_where_a_job_stands_and_what_is_ahead_of_it(
    store: JobStore, clock: Clock, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(spooler.core.store.reader, "_PLACES_CHUNK", chunk)
    sizes = [3, 1, None, 10, 0, 5, 2, 7]
    for n, shots in enumerate(sizes):
        queue(store, f"q{n}", shots, backend="nali" if n == 6 else BACKEND)
    queue(store, "front", 4, key=-5.0)
    run(store, clock, "r", 10, 1)
    order = ["front"] + [f"q{n}" for n in range(len(sizes))]
    sized: dict[str, int | None] = dict(zip(order, [4, *sizes], strict=True))
    positions = store.read.queue_positions()
    for wanted in (order, ["q7", "q3", "r", "nope", "q3"], ["q5"], ["front", "q0"], []):
        places = store.read.queue_places(wanted)
        assert {j: p.position for j, p in places.items()} == {
            j: positions[j] for j in wanted if j in positions
        }
        for job_id, place in places.items():
            ahead = order[: order.index(job_id)]
            assert place.unsized_ahead == sum(sized[j] is None for j in ahead)
            assert place.intervals_ahead == sum(max((sized[j] or 1) - 1, 0) for j in ahead)
            assert place.one_backend == (order.index(job_id) < order.index("q6"))
    assert store.read.queue_places(["q1"])["q1"] == QueuePlace(3, 0, 5, True)


def same(shown: Estimate, walked: Estimate) -> bool:
    figures = (shown.elapsed_s, shown.start, shown.finish)
    expected = (walked.elapsed_s, walked.start, walked.finish)
    return all(
        a is b is None or (a is not None and b is not None and a == pytest.approx(b))
        for a, b in zip(figures, expected, strict=True)
    )


def check_against_the_walk(store: JobStore, now: float, chosen: list[str]) -> None:
    read = store.read
    records = [read.require(job_id) for job_id in chosen]
    places = read.queue_places(chosen)
    shown = estimate_shown(read, now, records, places)
    walked = estimate_jobs(read, now, set(chosen))
    for job_id in chosen:
        assert same(shown.get(job_id, Estimate()), walked.get(job_id, Estimate())), job_id


def test_a_pages_estimates_are_those_of_walking_the_whole_queue(
    store: JobStore, clock: Clock
) -> None:
    for n in range(3):
        run(store, clock, f"done{n}", 10, 10)
        finish(store, clock, f"done{n}")
    run(store, clock, "running", 20, 4)
    run(store, clock, "ahead", 10, 0)  # engaged behind it: no shot yet
    sizes = [1, 10, 3, 25, 7, 2, 12, 5, 9, 4, 6, 8]
    for n, shots in enumerate(sizes):
        queue(store, f"q{n}", shots, ("alice", "bob")[n % 2])
    queue(store, "front", 6, "bob", key=-1.0)
    clock.now += 3.0
    pages = [
        ["front", "q0", "q1", "q2"],
        ["q5", "q9", "q11"],  # a user's jobs, far apart
        ["q11"],
        ["running", "ahead", "q3", "done1"],
        ["done0"],
    ]
    walked = estimate_jobs(store.read, clock.now)
    assert walked["q11"].start is not None and walked["q11"].start > clock.now + 50
    for chosen in pages:
        check_against_the_walk(store, clock.now, chosen)
    # a job of unknown size: nothing behind it has an estimate
    queue(store, "unsized", None, key=5.5)
    for chosen in pages:
        check_against_the_walk(store, clock.now, chosen)
    shown = estimate_shown(
        store.read, clock.now, [store.read.require("q11")], store.read.queue_places(["q11"])
    )
    assert shown["q11"] == Estimate()
    with store.transaction() as tx:
        tx.transition("unsized", JobState.CANCELLED)
    # a job of another backend (no model): walked, as estimate_jobs does
    queue(store, "other", 5, backend="nali", key=7.5)
    for chosen in pages:
        check_against_the_walk(store, clock.now, chosen)
    with store.transaction() as tx:
        tx.transition("other", JobState.CANCELLED)
        write_pause(tx, PauseState(clock.now, "op@lab"))  # paused: no queued job starts
    for chosen in pages:
        check_against_the_walk(store, clock.now, chosen)


def test_jobs_that_neither_wait_nor_run_need_no_walk(store: JobStore, clock: Clock) -> None:
    run(store, clock, "done", 10, 10)
    finish(store, clock, "done")
    run(store, clock, "running", 10, 2)
    done = store.read.require("done")
    queries: list[str] = []
    store._db.set_trace_callback(queries.append)
    shown = estimate_shown(store.read, clock.now, [done], {})
    store._db.set_trace_callback(None)
    assert shown["done"].elapsed_s == pytest.approx(1.0 + 10 * 0.5 + 2.0)
    assert len(queries) == 1 and "FROM transitions" in queries[0], queries  # when it ran
