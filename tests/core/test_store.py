from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spooler.core.errors import IllegalTransition
from spooler.core.states import JobState
from spooler.core.store import SCHEMA_VERSION, JobStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    ticks = iter(range(1000, 2000))
    s = JobStore(tmp_path / "db.sqlite3", clock=lambda: float(next(ticks)))
    yield s
    s.close()


def test_wal_and_full_sync(store: JobStore) -> None:
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_lifecycle_with_history(store: JobStore) -> None:
    with store.transaction() as tx:
        tx.add_job(job_id="a", backend="singlequdit", source_name="a.json", claim_name="a.json")
        tx.transition("a", JobState.QUEUED, note="queued")
        tx.transition("a", JobState.RUNNING, note="engaged")
        tx.transition("a", JobState.ERROR, note="failed", error_message="boom")
    record = store.read.require("a")
    assert record.state is JobState.ERROR and record.error_message == "boom"
    assert record.detail == "Got your json.; queued; engaged; failed"
    with store.transaction() as tx:
        tx.transition("a", JobState.QUEUED, note="requeued")
    record = store.read.require("a")
    assert record.attempt == 2 and record.error_message is None
    history = store.read.history("a")
    assert [(h.attempt, h.to_state) for h in history] == [
        (1, JobState.INITIALIZING),
        (1, JobState.QUEUED),
        (1, JobState.RUNNING),
        (1, JobState.ERROR),
        (2, JobState.QUEUED),
    ]
    assert [h.at for h in history] == sorted(h.at for h in history)


def test_illegal_transition_changes_nothing(store: JobStore) -> None:
    with store.transaction() as tx:
        tx.add_job(job_id="a", backend="b", source_name="a.json", claim_name="a.json")
    with pytest.raises(IllegalTransition), store.transaction() as tx:
        tx.transition("a", JobState.QUEUED)
        tx.transition("a", JobState.DONE)
    assert store.read.require("a").state is JobState.INITIALIZING  # rolled back whole


def test_rejected_ids_and_queue_positions(store: JobStore) -> None:
    with store.transaction() as tx:
        for name in ("x", None, "y", "z"):
            record = tx.add_job(
                job_id=name, backend="b", source_name=f"{name}.json", claim_name=f"{name}"
            )
            if name is None:
                assert record.job_id == f"rejected.{record.seq}"
                tx.transition(record.job_id, JobState.ERROR, error_message="bad id")
            else:
                tx.transition(name, JobState.QUEUED)
    assert [r.job_id for r in store.read.queue()] == ["x", "y", "z"]
    assert store.read.queue_positions() == {"x": 1, "y": 2, "z": 3}
    with store.transaction() as tx:
        tx.transition("x", JobState.RUNNING)
    assert store.read.queue_positions(["z", "x"]) == {"z": 2}


def _writer(path: str, prefix: str, count: int) -> None:
    store = JobStore(Path(path))
    for i in range(count):
        with store.transaction() as tx:
            job_id = f"{prefix}{i}"
            tx.add_job(job_id=job_id, backend="b", source_name=job_id, claim_name=job_id)
            tx.transition(job_id, JobState.QUEUED)
            tx.note(job_id, f"from {prefix}")
    store.close()


def test_two_processes_write_concurrently_without_losing_anything(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    JobStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), p, 200)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = JobStore(path)
    try:
        records = store.read.jobs()
        assert len(records) == 400
        assert all(
            r.state is JobState.QUEUED and r.detail.endswith(f"from {r.job_id[0]}") for r in records
        )
        assert len({r.seq for r in records}) == 400
    finally:
        store.close()


def test_a_note_with_the_separator_stays_one_note_and_is_not_repeated(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "db")
    with store.transaction() as tx:
        tx.add_job(job_id="j", backend="singlequdit", source_name="j", claim_name="j")
        tx.note("j", "waiting; still")
        tx.note("j", "waiting; still")
    record = store.read.require("j")
    assert record.notes == ["Got your json.", "waiting, still"]


def test_an_older_store_gains_the_new_columns_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 1, backend TEXT NOT NULL,
            submitter TEXT, source_name TEXT NOT NULL, claim_name TEXT,
            detail TEXT NOT NULL DEFAULT '', error_message TEXT, queue_key REAL,
            experiments INTEGER, shots_requested INTEGER, shots_expected INTEGER,
            shots_done INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
            updated_at REAL NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO jobs (job_id, state, backend, source_name, queue_key, created_at,
            updated_at) VALUES ('kept', 'QUEUED', 'singlequdit', 'kept.json', 1.0, 5.0, 5.0);
        """
    )
    old.commit()
    old.close()
    store = JobStore(path, clock=lambda: 10.0)
    try:
        record = store.read.require("kept")
        assert record.state is JobState.QUEUED and record.lab_action is None
        assert record.first_shot_at is None and record.last_shot_at is None
        assert store.read.meta("schema_version") == str(SCHEMA_VERSION)
        with store.transaction() as tx:
            tx.transition("kept", JobState.RUNNING)
            tx.set_counts("kept", shots_made=2)
        assert store.read.require("kept").last_shot_at == 10.0
    finally:
        store.close()


def plans(store: JobStore, run: Callable[[], object]) -> list[str]:
    """The query plans of the statements *run* makes the store execute."""
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        run()
    finally:
        store._db.set_trace_callback(None)
    found: list[str] = []
    for sql in statements:
        if sql.lstrip().upper().startswith("SELECT"):
            rows = store._db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
            found.extend(str(row[3]) for row in rows)
    return found


@pytest.mark.parametrize("statistics", [False, True])
def test_what_every_step_asks_is_looked_up_in_an_index_not_scanned(
    tmp_path: Path, statistics: bool
) -> None:
    """The running jobs (both daemons, every step) and an attempt's archived shots (the result
    daemon, every batch): the cost of neither may grow with the finished jobs or the ledger,
    with or without the statistics ``labspool prune`` gathers."""
    from spooler.core.store.shots import Ledger

    store = JobStore(tmp_path / "db.sqlite3")
    try:
        with store.transaction() as tx:
            for n in range(300):
                job = f"j{n}"
                tx.add_job(
                    job_id=job, backend="singlequdit", source_name=f"{job}.json", claim_name="x"
                )
                tx.transition(job, JobState.QUEUED)
                tx.transition(job, JobState.RUNNING)
                if n < 297:
                    tx.transition(job, JobState.DONE)
                for shot in range(20):
                    Ledger.claim(
                        tx, f"{job}-{shot}", job_id=job, attempt=1, experiment="e",
                        shot_index=shot, local_path="/x.h5",
                    )  # fmt: skip
        if statistics:
            store._db.execute("ANALYZE")
        for plan in plans(store, lambda: store.read.running()) + plans(
            store, lambda: Ledger.archived_count(store.read, "j5", 1)
        ):
            assert not plan.startswith("SCAN"), plan  # (sorting what was found is fine)
            assert "shots_by_state" not in plan, plan
        # the live page's last ended jobs: read in order from an index, never all sorted
        ended = (JobState.DONE, JobState.ERROR, JobState.CANCELLED)
        for plan in plans(store, lambda: store.read.last_ended(ended, None, 30)):
            assert not plan.startswith("SCAN") and "TEMP B-TREE" not in plan, plan
        for plan in plans(store, lambda: store.read.last_ended(ended, "alice", 30)):
            assert "jobs_by_state_submitter" in plan or "TEMP B-TREE" in plan, plan
        last = store.read.last_ended(ended, None, 5)
        assert [r.job_id for r in last] == ["j296", "j295", "j294", "j293", "j292"]
    finally:
        store.close()
