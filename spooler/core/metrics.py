"""The labspool metrics: what Prometheus scrapes, read from the job store at scrape time.

One concept: :class:`LabspoolCollector` reads the job store (its own connection, all its
queries in one snapshot) and the quarantine folder whenever it is scraped, and holds no
count of its own. So the spooler daemon's endpoint (``metrics.listen``, :func:`serve_metrics`)
and the gateway's ``GET /metrics`` report the same numbers, whichever process answers, and a
restart of either loses nothing.

What it reports (each with its HELP text below):

- ``labspool_jobs{state}``: jobs per state, every :class:`~spooler.core.states.JobState`, 0 when
  none (``Reader.count_by_state``: the table ``job_counts``, kept by triggers with every job);
- ``labspool_shots_made_total``, ``labspool_shots_analysed_total``: counted in the result
  daemon's **ledger** (table ``shots``, :mod:`spooler.core.store.shots`): a row per shot
  received (made),
  ``archived`` once analysed and archived. Not the sums of the jobs' ``shots_made`` and
  ``shots_done``: those start again from 0 when a job is requeued as a new attempt, so their
  sum would fall and Prometheus would read a counter reset; ledger rows stay (the one removed
  is an address refused right after it was received). The store keeps the ledger's rows
  counted per state (the table ``shot_counts``, changed by triggers in the transaction of
  every change of the ledger): a scrape reads those few rows
  (:meth:`spooler.core.store.reports.Reports.shot_counts`), it does not count the ledger;
- ``labspool_machine_operational``, ``labspool_machine_reason{component}`` (the number of
  current reasons of that component, usually 1; the message is not a label: its text moves),
  ``labspool_machine_state_since_seconds``, ``labspool_machine_last_check_age_seconds``:
  :func:`spooler.core.health.read_health` (a record not refreshed for a minute is not operational);
- ``labspool_seconds_since_last_shot``: the ledger's newest ``received_at`` (index
  ``shots_by_received``); absent while no shot was ever received;
- ``labspool_quarantined_items``: ``*.reason.json`` entries of the quarantine folder (one
  ``os.scandir``, links never followed, at most :data:`QUARANTINE_SCAN_MAX` entries looked at);
- ``labspool_notifications_pending``: messages neither sent nor dropped (partial index
  ``notifications_unsent``);
- ``labspool_queue_waiting_seconds_max``: how long the QUEUED job queued longest has waited
  (since its attempt was queued), 0 with an empty queue: the queued jobs through
  ``jobs_by_state``, each one's transitions through ``transitions_by_job``.

A store that cannot be read fails the scrape (HTTP 500): Prometheus then sees the target
down. What a scrape costs: every query above is an index search or reads a few rows (no
table scan), and none grows with the jobs or the ledger. (Counting the ledger instead cost
about 5 ms per 100,000 shots, the jobs' index about 1 ms per 10,000 jobs.)
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from spooler.core.health import Health, read_health
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobStore, Reader
from spooler.core.store.notifications import NotificationRows
from spooler.core.store.reports import Reports

__all__ = [
    "QUARANTINE_SCAN_MAX",
    "Closer",
    "LabspoolCollector",
    "Metrics",
    "Reading",
    "count_quarantined",
    "read_store",
    "serve_metrics",
]

log = logging.getLogger(__name__)

Closer = Callable[[], None]  # stops what was started; safe to call twice

QUARANTINE_SCAN_MAX = 100_000  # directory entries a scrape looks at, at most


@dataclass(frozen=True, slots=True)
class Reading:
    """The store's numbers of one scrape, read in one snapshot."""

    jobs: dict[JobState, int]
    shots_made: int
    shots_analysed: int
    last_shot_at: float | None
    health: Health
    notifications_pending: int
    oldest_queued_at: float | None


def read_store(read: Reader, now: float) -> Reading:
    """Everything the metrics take from the store, in the view *read* (one snapshot)."""
    shots = Reports.shot_counts(read)
    return Reading(
        jobs=read.count_by_state(),
        shots_made=shots.made,
        shots_analysed=shots.analysed,
        last_shot_at=shots.last_received_at,
        health=read_health(read, now),
        notifications_pending=NotificationRows.pending(read),
        oldest_queued_at=Reports.oldest_queued_at(read),
    )


def count_quarantined(folder: Path, limit: int = QUARANTINE_SCAN_MAX) -> int:
    """Reason files (``*.reason.json``, regular files, links not followed) in *folder*,
    looking at no more than *limit* entries (a larger folder is counted up to there)."""
    count = 0
    try:
        with os.scandir(folder) as entries:
            for seen, entry in enumerate(entries, start=1):
                if entry.name.endswith(".reason.json") and entry.is_file(follow_symlinks=False):
                    count += 1
                if seen >= limit:
                    break
    except FileNotFoundError:
        return 0
    return count


class LabspoolCollector(Collector):
    """The labspool metrics, read from the job store and the quarantine folder whenever
    Prometheus asks (:meth:`collect`). Safe from several threads: one scrape at a time."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._database = settings.folders.database
        self._quarantine = settings.folders.quarantine
        self._clock = clock  # wall clock
        self._lock = threading.Lock()
        self._store: JobStore | None = None
        self._closer: weakref.finalize[[], LabspoolCollector] | None = None

    def _open(self) -> JobStore:
        # Opened at the first scrape, in the thread that scrapes (opening writes the schema's
        # version, in a transaction: never in the gateway's event loop).
        if self._store is None:
            self._store = JobStore(self._database)
            self._closer = weakref.finalize(self, self._store.close)  # when forgotten
        return self._store

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            store = self._open()
            now = self._clock()
            with store.snapshot() as read:
                reading = read_store(read, now)
        quarantined = count_quarantined(self._quarantine)
        yield from _families(reading, now, quarantined)

    def close(self) -> None:
        with self._lock:
            if self._closer is not None:
                self._closer()  # closes the store, once
            self._store = self._closer = None


def _families(reading: Reading, now: float, quarantined: int) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("labspool_jobs", "Jobs in the job store, per state.", labels=["state"])
    for state in JobState:
        jobs.add_metric([state.value], reading.jobs.get(state, 0))
    yield jobs
    yield CounterMetricFamily(
        "labspool_shots_made_total",
        "Shots the machine made that the result daemon received (rows of its ledger).",
        value=reading.shots_made,
    )
    yield CounterMetricFamily(
        "labspool_shots_analysed_total",
        "Shots analysed and archived on the store (ledger rows 'archived').",
        value=reading.shots_analysed,
    )
    health = reading.health
    yield GaugeMetricFamily(
        "labspool_machine_operational",
        "1 when the machine is operational (the spooler's health monitor, not stale), else 0.",
        value=int(health.operational),
    )
    reasons = GaugeMetricFamily(
        "labspool_machine_reason",
        "Current reasons the machine is not operational, per component.",
        labels=["component"],
    )
    per_component: dict[str, int] = {}
    for reason in health.reasons:
        per_component[reason.component] = per_component.get(reason.component, 0) + 1
    for component, count in sorted(per_component.items()):
        reasons.add_metric([component], count)
    yield reasons
    if health.since is not None:
        yield GaugeMetricFamily(
            "labspool_machine_state_since_seconds",
            "Seconds since the machine last became operational or not operational.",
            value=max(now - health.since, 0.0),
        )
    if health.last_check is not None:
        yield GaugeMetricFamily(
            "labspool_machine_last_check_age_seconds",
            "Seconds since the spooler last looked at the machine.",
            value=max(now - health.last_check, 0.0),
        )
    if reading.last_shot_at is not None:
        yield GaugeMetricFamily(
            "labspool_seconds_since_last_shot",
            "Seconds since the result daemon received the newest shot of any job.",
            value=max(now - reading.last_shot_at, 0.0),
        )
    yield GaugeMetricFamily(
        "labspool_quarantined_items",
        "Items the daemons gave up, in the quarantine folder (reason files).",
        value=quarantined,
    )
    yield GaugeMetricFamily(
        "labspool_notifications_pending",
        "Notifications for the lab's channels neither sent nor dropped yet.",
        value=reading.notifications_pending,
    )
    waited = 0.0 if reading.oldest_queued_at is None else max(now - reading.oldest_queued_at, 0.0)
    yield GaugeMetricFamily(
        "labspool_queue_waiting_seconds_max",
        "Seconds the QUEUED job queued longest has waited (0: the queue is empty).",
        value=waited,
    )


class Metrics:
    """labspool's collector in a registry of its own: one process's exposition."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.collector = LabspoolCollector(settings, clock=clock)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    def exposition(self) -> bytes:
        """The text Prometheus reads (``prometheus_client.CONTENT_TYPE_LATEST``); blocks on
        the store: call it in a worker thread from an event loop."""
        return generate_latest(self.registry)

    def close(self) -> None:
        self.collector.close()


def _nothing() -> None:
    pass


def serve_metrics(settings: Settings, *, clock: Callable[[], float] = time.time) -> Closer:
    """Serve the metrics over HTTP at ``metrics.listen`` (any path answers), in a thread;
    returns what stops the server and closes its store. Nothing is served (and the
    returned closer does nothing) when ``metrics.listen`` is not set.

    A port that cannot be bound is logged as an error and nothing is served: the spooler
    goes on running jobs, and Prometheus sees the target down."""
    address = settings.metrics.address
    if address is None:
        return _nothing
    host, port = address
    metrics = Metrics(settings, clock=clock)
    try:
        server, thread = start_http_server(port, host, registry=metrics.registry)
    except OSError as exc:
        metrics.close()
        log.error("metrics: cannot listen on %s: %s; not served", settings.metrics.listen, exc)
        return _nothing
    log.info("metrics: serving on http://%s/metrics", settings.metrics.listen)
    done = threading.Lock()

    def close() -> None:
        if not done.acquire(blocking=False):
            return
        server.shutdown()
        server.server_close()
        thread.join()
        metrics.close()

    return close
