"""The Prometheus metrics (spooler/core/metrics.py): what a scrape reports of a tree, and both
places that serve it (the spooler daemon's ``metrics.listen``, the gateway's ``/metrics``)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from spooler.core.health import Reason, encode_reasons
from spooler.core.items import Quarantine
from spooler.core.metrics import Metrics, count_quarantined, serve_metrics
from spooler.core.settings import Settings, load_settings
from spooler.core.states import JobState
from spooler.core.store import JobStore, Transaction
from spooler.core.store.notifications import NotificationRows
from spooler.gateway.app import make_app
from tests.conftest import record_job, running_spooler

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
S = JobState


def parse(text: str) -> Samples:
    """Every sample of an exposition, by (name, sorted labels); each family has its HELP."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, f"{family.name} has no HELP text"
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def scrape(settings: Settings, now: float) -> Samples:
    metrics = Metrics(settings, clock=lambda: now)
    try:
        return parse(metrics.exposition().decode())
    finally:
        metrics.close()


@pytest.fixture
def busy_tree(tree: Settings) -> Iterator[tuple[Settings, float]]:
    """A tree with jobs in several states, a health record, a ledger, quarantined items and
    notifications; and the time (wall clock) its numbers are read at."""
    record_job(tree, "init", "ada")
    record_job(tree, "q1", "ada", S.QUEUED)
    record_job(tree, "q2", "bob", S.QUEUED)
    record_job(tree, "run", "ada", S.QUEUED, S.RUNNING)
    record_job(tree, "done1", "ada", S.QUEUED, S.RUNNING, S.DONE)
    record_job(tree, "done2", "bob", S.QUEUED, S.RUNNING, S.DONE)
    record_job(tree, "err", "bob", S.QUEUED, S.ERROR)  # leaves a notification: job_error
    now = time.time() + 1.0
    store = JobStore(tree.folders.database, clock=lambda: now - 10.0)
    try:
        reasons = [
            Reason("blacs", "BLACS does not answer", now - 100.0),
            Reason("device:camera", "in error", now - 50.0),
            Reason("device:camera", "too cold", now - 40.0),
        ]
        with store.transaction() as tx:
            tx.set_health(operational=False, reasons=encode_reasons(reasons), since=now - 100.0)
            tx.notify("test", "two", "sent")
            tx.notify("test", "three", "dropped")
            tx.notify("test", "four", "waits")
            ids = [i for (i,) in tx.execute("SELECT id FROM notifications ORDER BY id")]
            NotificationRows.sent(tx, [ids[1]])
            NotificationRows.failed(tx, [ids[2]], "refused", now, drop=True)
            for n, (state, age) in enumerate(
                [("received", 60.0), ("archived", 45.0), ("archived", 30.0), ("quarantined", 90)]
            ):
                tx.execute(
                    "INSERT INTO shots (address, job_id, attempt, experiment, shot_index, "
                    "local_path, state, received_at) VALUES (?, 'run', 1, 'experiment_0', ?, "
                    "'/x.h5', ?, ?)",
                    (f"run__experiment_0__{n}.json", n, state, now - age),
                )
    finally:
        store.close()
    quarantine = Quarantine(tree.folders.quarantine, "result")
    quarantine.put(None, "not believed", name="a.json")
    item = tree.folders.addresses / "b.json"
    item.write_text("{}")
    quarantine.put(item, "names no job")
    outside = tree.folders.state / "elsewhere.reason.json"
    outside.write_text("{}")
    os.symlink(outside, tree.folders.quarantine / "link.reason.json")  # not followed
    (tree.folders.quarantine / "folder.reason.json").mkdir()  # not a file
    yield tree, now


def test_a_scrape_reports_the_store_the_health_and_the_folders(
    busy_tree: tuple[Settings, float],
) -> None:
    tree, now = busy_tree
    samples = scrape(tree, now)

    jobs = {s: value(samples, "labspool_jobs", state=s.value) for s in JobState}
    assert jobs == {
        S.INITIALIZING: 1,
        S.QUEUED: 2,
        S.RUNNING: 1,
        S.DONE: 2,
        S.ERROR: 1,
        S.CANCELLED: 0,  # every state, 0 when none
    }
    assert value(samples, "labspool_shots_made_total") == 4  # every ledger row
    assert value(samples, "labspool_shots_analysed_total") == 2  # archived
    assert value(samples, "labspool_seconds_since_last_shot") == pytest.approx(30.0)

    assert value(samples, "labspool_machine_operational") == 0
    reasons = {k[1]: v for k, v in samples.items() if k[0] == "labspool_machine_reason"}
    assert reasons == {(("component", "blacs"),): 1, (("component", "device:camera"),): 2}
    assert value(samples, "labspool_machine_state_since_seconds") == pytest.approx(100.0)
    assert value(samples, "labspool_machine_last_check_age_seconds") == pytest.approx(10.0)

    assert value(samples, "labspool_quarantined_items") == 2  # links and folders not counted
    assert value(samples, "labspool_notifications_pending") == 2  # job_error and "four"

    store = JobStore(tree.folders.database)
    try:
        (queued_at,) = store.read.execute(
            "SELECT MIN(at) FROM transitions WHERE to_state = 'QUEUED' AND job_id IN ('q1', 'q2')"
        ).fetchone()
    finally:
        store.close()
    waited = value(samples, "labspool_queue_waiting_seconds_max")
    assert waited == pytest.approx(now - queued_at)
    assert 0 < waited < 60


def test_an_operational_machine_and_a_stale_record(tree: Settings) -> None:
    now = time.time()
    store = JobStore(tree.folders.database, clock=lambda: now - 5.0)
    try:
        with store.transaction() as tx:
            tx.set_health(operational=True, reasons="[]", since=now - 3600.0)
    finally:
        store.close()
    samples = scrape(tree, now)
    assert value(samples, "labspool_machine_operational") == 1
    assert not [k for k in samples if k[0] == "labspool_machine_reason"]
    assert value(samples, "labspool_machine_state_since_seconds") == pytest.approx(3600.0)

    later = scrape(tree, now + 120.0)  # the spooler stopped looking: not believed
    assert value(later, "labspool_machine_operational") == 0
    assert value(later, "labspool_machine_reason", component="spooler") == 1
    assert value(later, "labspool_machine_last_check_age_seconds") == pytest.approx(125.0)


def test_a_fresh_store_without_ledger_or_health(tree: Settings) -> None:
    """The result daemon never opened this store: no ledger; the spooler never looked at
    the machine: no health record. Counters are 0, the ages absent."""
    samples = scrape(tree, time.time())
    assert all(value(samples, "labspool_jobs", state=s.value) == 0 for s in JobState)
    assert value(samples, "labspool_shots_made_total") == 0
    assert value(samples, "labspool_shots_analysed_total") == 0
    assert value(samples, "labspool_machine_operational") == 0
    assert value(samples, "labspool_quarantined_items") == 0
    assert value(samples, "labspool_notifications_pending") == 0
    assert value(samples, "labspool_queue_waiting_seconds_max") == 0
    names = {name for name, _ in samples}
    for absent in (
        "labspool_seconds_since_last_shot",
        "labspool_machine_state_since_seconds",
        "labspool_machine_last_check_age_seconds",
    ):
        assert absent not in names


def test_the_quarantine_count_looks_at_a_bounded_number_of_entries(tree: Settings) -> None:
    folder = tree.folders.quarantine
    for n in range(5):
        (folder / f"item{n}.reason.json").write_text("{}")
    assert count_quarantined(folder) == 5
    assert count_quarantined(folder, limit=3) == 3
    assert count_quarantined(tree.folders.state / "missing") == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def with_metrics(settings: Settings, listen: str) -> Settings:
    raw = yaml.safe_load(settings.path.read_text(encoding="utf-8"))
    raw["metrics"] = {"listen": listen}
    settings.path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_settings(settings.path)


def refused(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


def test_the_spooler_daemon_serves_them_at_metrics_listen_until_closed(
    busy_tree: tuple[Settings, float],
) -> None:
    tree, _ = busy_tree
    port = free_port()
    settings = with_metrics(tree, f"127.0.0.1:{port}")
    threads_before = set(threading.enumerate())
    url = f"http://127.0.0.1:{port}/metrics"
    with running_spooler(settings), urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        samples = parse(answer.read().decode())
    assert value(samples, "labspool_jobs", state="QUEUED") == 2
    assert value(samples, "labspool_shots_analysed_total") == 2
    # closed: nothing listens, the port can be bound again, no thread of it is left
    assert refused(port)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    assert set(threading.enumerate()) <= threads_before


def test_a_port_taken_is_logged_and_the_spooler_goes_on(
    tree: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = with_metrics(tree, f"127.0.0.1:{taken.getsockname()[1]}")
        with caplog.at_level(logging.ERROR, logger="spooler.core.metrics"):
            close = serve_metrics(settings)
        close()
    assert "cannot listen on" in caplog.text
    close_nothing = serve_metrics(tree)  # metrics.listen not set: nothing is served
    close_nothing()


def test_the_gateway_answers_metrics_without_a_token(busy_tree: tuple[Settings, float]) -> None:
    tree, _ = busy_tree
    with TestClient(make_app(tree)) as client:
        answer = client.get("/metrics")
        again = client.get("/metrics")
        posted = client.post("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples = parse(answer.text)
    assert value(samples, "labspool_jobs", state="DONE") == 2
    assert value(samples, "labspool_machine_reason", component="blacs") == 1
    assert value(samples, "labspool_quarantined_items") == 2
    assert parse(again.text).keys() == samples.keys()
    assert posted.status_code == 405


def test_the_template_names_metrics_and_serves_none(tree: Settings) -> None:
    assert "metrics:" in tree.path.read_text(encoding="utf-8")
    assert tree.metrics.listen is None and tree.metrics.address is None


def test_the_shots_are_counted_by_the_store_not_at_each_scrape(tree: Settings) -> None:
    """The ledger's counts follow every claim, archiving, quarantine and refusal, an older
    store's ledger is counted once when it is opened, and a scrape reads the counts, never
    the ledger's rows or its index of states (what it costs does not grow with the ledger)."""
    import sqlite3

    from spooler.core.store.reports import Reports
    from spooler.core.store.shots import Ledger

    def claim(tx: Transaction, address: str) -> None:
        Ledger.claim(
            tx, address, job_id="j", attempt=1, experiment="e", shot_index=int(address[1:]),
            local_path=f"/x/{address}.h5",
        )  # fmt: skip

    def archive(tx: Transaction, address: str) -> None:
        Ledger.archived(
            tx, address, sds_path=f"/s/{address}.h5", size=1, sha256="0" * 64, frame=b"",
            memory=None, error=None, routines=None,
        )  # fmt: skip

    store = JobStore(tree.folders.database)
    try:
        with store.transaction() as tx:
            for n in range(6):
                claim(tx, f"s{n}")
            claim(tx, "s0")  # again: ignored, not counted twice
            for n in range(3):
                archive(tx, f"s{n}")
            Ledger.quarantined(tx, "s3", error="unreadable")
            Ledger.forget(tx, "s4")  # refused right after it was received
        counts = Reports.shot_counts(store.read)
        assert (counts.made, counts.analysed) == (5, 3)
        (rows,) = store.read.execute("SELECT COUNT(*) FROM shots").fetchone()
        assert rows == 5
    finally:
        store.close()
    # a store from before the counts: its ledger counted once, when opened
    old = sqlite3.connect(tree.folders.database)
    old.executescript(
        "DROP TRIGGER shots_counted_in; DROP TRIGGER shots_counted_out; "
        "DROP TRIGGER shots_counted_moved; DROP TABLE shot_counts; "
        "INSERT INTO shots (address, local_path, state, received_at) VALUES ('t', '/t', "
        "'archived', 1.0);"
    )
    old.close()
    store = JobStore(tree.folders.database)
    try:
        counts = Reports.shot_counts(store.read)
        assert (counts.made, counts.analysed) == (6, 4)
        seen: list[str] = []
        store._db.set_trace_callback(seen.append)
        Reports.shot_counts(store.read)
        store._db.set_trace_callback(None)
        for sql in seen:
            for row in store.read.execute(f"EXPLAIN QUERY PLAN {sql}"):
                detail = str(row[3])
                assert "shots_by_state" not in detail and detail != "SCAN shots", detail
    finally:
        store.close()


def test_the_jobs_are_counted_by_the_store_not_at_each_scrape(tree: Settings) -> None:
    """The jobs per state follow every new job and every transition, an older store's jobs
    are counted once when it is opened, and a scrape reads the counts, not the jobs."""
    import sqlite3

    from spooler.core.jobs import Jobs

    jobs = Jobs(tree.folders)
    try:
        with jobs.change() as tx:
            for n in range(4):
                tx.add_job(job_id=f"j{n}", backend="singlequdit", source_name=f"j{n}.json",
                           claim_name=f"j{n}")  # fmt: skip
            for n in range(3):
                tx.transition(f"j{n}", JobState.QUEUED)
            tx.transition("j0", JobState.CANCELLED)
        counts = jobs.read.count_by_state()
        assert counts[JobState.INITIALIZING] == 1 and counts[JobState.QUEUED] == 2
        assert counts[JobState.CANCELLED] == 1 and counts[JobState.DONE] == 0
        assert set(counts) == set(JobState)
        seen: list[str] = []
        jobs.store._db.set_trace_callback(seen.append)
        jobs.read.count_by_state()
        jobs.store._db.set_trace_callback(None)
        for sql in seen:
            for row in jobs.read.execute(f"EXPLAIN QUERY PLAN {sql}"):
                assert "jobs" not in str(row[3]).replace("job_counts", ""), row[3]
    finally:
        jobs.close()
    old = sqlite3.connect(tree.folders.database)  # a store from before the counts
    old.executescript(
        "DROP TRIGGER jobs_counted_in; DROP TRIGGER jobs_counted_out; "
        "DROP TRIGGER jobs_counted_moved; DROP TABLE job_counts; "
        "UPDATE jobs SET state = 'DONE' WHERE job_id = 'j1';"
    )
    old.close()
    jobs = Jobs(tree.folders)
    try:
        counts = jobs.read.count_by_state()
        assert (counts[JobState.QUEUED], counts[JobState.DONE]) == (1, 1)
    finally:
        jobs.close()
