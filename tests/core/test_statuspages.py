"""``labspool status`` of every job, read a page at a time: the same documents as the status
files, every job once, a few statements a page (never a few a job), each through an index."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest

import spooler.core.statuspages
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.statusfile import status_document
from spooler.core.statusview import Progress, Selection, live, snapshot, write_json, write_table
from spooler.core.store import JobStore, Transaction

NOW = 1_000_000.0


def job(tx: Transaction, job_id: str, backend: str, *states: JobState, user: str = "u") -> None:
    tx.add_job(
        job_id=job_id, backend=backend, source_name=job_id, claim_name=job_id, submitter=user
    )
    tx.set_counts(job_id, experiments=1, shots_requested=4)
    for state in states:
        tx.transition(job_id, state)
        if state is JobState.RUNNING:
            tx.set_counts(job_id, shots_expected=4)
            tx.now += 1.0
            for made in range(1, 5):
                tx.set_counts(job_id, shots_made=made, shots_done=made)
                tx.now += 0.5
        tx.now += 1.0


def year(settings: Settings, finished: int) -> None:
    """*finished* ended jobs (mostly DONE), a job being validated, one running and a queue
    of four (one moved to the front) behind it."""
    backend = settings.backend
    store = JobStore(settings.folders.database, clock=lambda: NOW - 10_000.0)
    try:
        with store.transaction() as tx:
            for n in range(finished):
                ended = (JobState.DONE, JobState.ERROR, JobState.DONE, JobState.CANCELLED)[n % 4]
                path = [JobState.QUEUED] + (
                    [] if ended is JobState.CANCELLED else [JobState.RUNNING]
                )
                job(tx, f"old{n:04d}", backend, *path, ended, user=("ann", "bo")[n % 2])
            job(tx, "new", backend)
            job(tx, "run", backend, JobState.QUEUED, JobState.RUNNING)
            for n in range(4):
                job(tx, f"q{n}", backend, JobState.QUEUED)
            tx.set_queue_key("q2", -1.0)
    finally:
        store.close()


def walked(settings: Settings) -> list[dict[str, object]]:
    """Every job's status file as the daemons render it (its queue walked, job by job)."""
    store = JobStore(settings.folders.database)
    try:
        with store.snapshot() as reader:
            return [status_document(reader, r, now=NOW) for r in reader.jobs()]
    finally:
        store.close()


@contextmanager
def statements() -> Iterator[list[str]]:
    """The statements of the job stores opened in the block."""
    seen: list[str] = []
    connect = sqlite3.connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        db = connect(*args, **kwargs)  # type: ignore[call-overload]
        db.set_trace_callback(seen.append)
        return db  # type: ignore[no-any-return]

    with mock.patch.object(sqlite3, "connect", traced):
        yield seen


def selects(seen: list[str]) -> list[str]:
    return [s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))]


@pytest.mark.parametrize("page", [3, 500])
def test_the_json_list_is_the_status_files_of_every_job_in_order(
    tree: Settings, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    monkeypatch.setattr(spooler.core.statuspages, "PAGE", page)
    year(tree, 13)
    out = io.StringIO()
    write_json(tree, out, now=NOW)
    expected = walked(tree)
    assert out.getvalue() == json.dumps(expected, indent=1) + "\n"  # as printed before
    assert [d["status"] for d in expected if d["queue_position"] is not None] == ["QUEUED"] * 4
    assert [d["estimated_finish"] is not None for d in expected].count(False) == 4  # (cancelled)
    assert snapshot(tree, now=NOW).documents == expected
    assert snapshot(tree, "q1", now=NOW).documents == [d for d in expected if d["job_id"] == "q1"]
    assert snapshot(tree, "nosuch", now=NOW).documents == []


def test_an_empty_or_missing_store_is_an_empty_list(tree: Settings) -> None:
    out = io.StringIO()
    write_json(tree, out, now=NOW)  # no store yet
    assert out.getvalue() == "[]\n" and not tree.folders.database.exists()
    JobStore(tree.folders.database).close()
    out = io.StringIO()
    write_json(tree, out, now=NOW)
    assert json.loads(out.getvalue()) == []


def test_the_table_in_pages_has_every_row_once_in_order(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    year(tree, 10)
    whole = io.StringIO()
    write_table(tree, whole, now=NOW)
    monkeypatch.setattr(spooler.core.statuspages, "PAGE", 3)
    monkeypatch.setattr(spooler.core.statusview, "PAGE", 3)
    paged = io.StringIO()
    write_table(tree, paged, now=NOW)
    lines = paged.getvalue().splitlines()
    assert [line.split() for line in lines] == [
        line.split() for line in whole.getvalue().splitlines()
    ]
    assert lines[1].startswith("RUNNING  run  [")
    assert lines[2].split()[:4] == ["POS", "JOB", "USER", "STATE"]
    rows = [line.split()[:2] for line in lines[3:]]
    assert rows[:4] == [["1", "q2"], ["2", "q0"], ["3", "q1"], ["4", "q3"]]
    assert [r[0] for r in rows[4:]] == [f"old{n:04d}" for n in range(10)] + ["new"]
    # the selection: the last two of the others (after the running job and the queue) ...
    last = io.StringIO()
    write_table(tree, last, Selection(last=2), now=NOW)
    assert [line.split()[0] for line in last.getvalue().splitlines()[7:]] == ["old0009", "new"]
    # ... and the jobs of a state
    errors = io.StringIO()
    write_json(tree, errors, Selection(frozenset({JobState.ERROR, JobState.QUEUED})), now=NOW)
    ids = [d["job_id"] for d in json.loads(errors.getvalue())]
    assert ids == ["old0001", "old0005", "old0009", "q0", "q1", "q2", "q3"]
    errors = io.StringIO()
    write_json(tree, errors, Selection(frozenset({JobState.ERROR}), last=2), now=NOW)
    assert [d["job_id"] for d in json.loads(errors.getvalue())] == ["old0005", "old0009"]


def test_the_live_view_reads_the_last_few_ended_jobs_only(tree: Settings) -> None:
    year(tree, 10)
    view = live(tree, 3, now=NOW)
    ids = [d["job_id"] for d in view.documents]
    assert ids == ["run", "q2", "q0", "q1", "q3", "old0008", "old0009", "new"]


def test_a_listing_asks_a_few_statements_a_page_not_a_job(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twice the ended jobs: about twice the statements of the listing, a few per page of 20
    jobs; the status of one job and the live view: the same statements either way."""
    monkeypatch.setattr(spooler.core.statuspages, "PAGE", 20)
    counts: dict[int, dict[str, int]] = {}
    runs: dict[str, Callable[[], object]] = {
        "json": lambda: write_json(tree, io.StringIO(), now=NOW),
        "table": lambda: write_table(tree, io.StringIO(), now=NOW),
        "one": lambda: snapshot(tree, "old0050", now=NOW),
        "queued": lambda: snapshot(tree, "q1", now=NOW),
        "live": lambda: live(tree, 5, now=NOW),
    }
    for finished in (100, 200):
        _new_store(tree, finished)
        counts[finished] = {}
        for name, run in runs.items():
            with statements() as seen:
                run()
            counts[finished][name] = len(selects(seen))
    for name in ("json", "table"):
        pages = 200 // 20 + 1
        assert counts[200][name] <= 8 * pages, (name, counts)  # (5 jobs a statement: 40)
        assert counts[200][name] - counts[100][name] <= 8 * (pages // 2), (name, counts)
    for name in ("one", "queued", "live"):
        assert counts[200][name] == counts[100][name], (name, counts)


def _new_store(tree: Settings, finished: int) -> None:
    """*tree*'s store made anew, of *finished* ended jobs."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tree.folders.database}{suffix}").unlink(missing_ok=True)
    year(tree, finished)


def test_the_listing_and_one_job_read_through_indexes(tree: Settings) -> None:
    """Every statement of a listing, of one job's status and of the live view is searched
    in an index: no scan of the jobs or of their history (with or without the statistics
    that ``labspool prune`` gathers)."""
    year(tree, 60)
    for analysed in (False, True):
        if analysed:
            db = sqlite3.connect(tree.folders.database)
            db.execute("ANALYZE")
            db.close()
        with statements() as seen:
            write_json(tree, io.StringIO(), Selection(), now=NOW)
            write_table(tree, io.StringIO(), Selection(last=5), now=NOW)
            snapshot(tree, "old0030", now=NOW)
            snapshot(tree, "q1", now=NOW)
            live(tree, 5, now=NOW)
        db = sqlite3.connect(tree.folders.database)
        try:
            for sql in set(selects(seen)):
                bound = sql.replace("-Inf", "-1e999")  # (as the trace writes -inf)
                for row in db.execute(f"EXPLAIN QUERY PLAN {bound}"):
                    detail = str(row[3])
                    for table in ("jobs", "transitions"):
                        assert not detail.startswith(f"SCAN {table}"), (sql, detail)
                        assert not detail.startswith(f"SCAN {table[0]} "), (sql, detail)
        finally:
            db.close()


def test_progress_is_said_on_its_own_stream_once_the_listing_takes_long(tree: Settings) -> None:
    year(tree, 30)
    ticks = iter(range(1000))
    err = io.StringIO()
    out = io.StringIO()
    progress = Progress(err, after_s=2.0, every_s=0.0, clock=lambda: float(next(ticks)))
    with mock.patch.object(spooler.core.statuspages, "PAGE", 10):
        write_json(tree, out, progress=progress, now=NOW)
    json.loads(out.getvalue())  # nothing but the list on the output
    said = err.getvalue().splitlines()
    assert said[0] == "labspool status: 20 of 36 jobs (55%)"  # (not before 2 s: the first page)
    assert said[-1].startswith("labspool status: 36 jobs in ")
    quick = io.StringIO()
    write_json(tree, io.StringIO(), progress=Progress(quick), now=NOW)
    assert quick.getvalue() == ""  # under a second: nothing said


def test_the_live_view_redraws_the_running_the_queue_and_the_last_others(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spooler.core.statusview import watch

    monkeypatch.setenv("LINES", "12")  # a third of it: the last 4 others
    year(tree, 20)
    out = io.StringIO()
    watch(tree, count=1, out=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("labspool status  ") and lines[2].startswith("RUNNING  run  [")
    rows = [line.split()[:2] for line in lines[4:]]
    assert rows == [["1", "q2"], ["2", "q0"], ["3", "q1"], ["4", "q3"]] + [
        [job, user] for job, user in (("old0017", "bo"), ("old0018", "ann"), ("old0019", "bo"))
    ] + [["new", "u"]]
