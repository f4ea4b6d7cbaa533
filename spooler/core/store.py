"""The job store: one SQLite database in WAL mode, shared by both daemons.

SQLite serialises writers across processes (``BEGIN IMMEDIATE``) and, with
``synchronous=FULL``, every commit is durable. The status files users read are views
rendered from it (:mod:`spooler.core.statusfile`).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spooler.core.errors import LabspoolError
from spooler.core.jobid import rejected_id
from spooler.core.states import JobState, check_transition

__all__ = [
    "ExperimentRecord",
    "HealthRow",
    "JobRecord",
    "JobStore",
    "NotificationRow",
    "QueuePlace",
    "Transaction",
    "TransitionRecord",
]

SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id         TEXT NOT NULL UNIQUE,
    state          TEXT NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 1,
    backend        TEXT NOT NULL,
    submitter      TEXT,
    source_name    TEXT NOT NULL,
    claim_name     TEXT,
    detail         TEXT NOT NULL DEFAULT '',
    error_message  TEXT,
    queue_key      REAL,
    experiments    INTEGER,
    shots_requested INTEGER,
    shots_expected INTEGER,
    shots_done     INTEGER NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL,
    lab_action     TEXT,
    first_shot_at  REAL,
    last_shot_at   REAL,
    shots_made     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, queue_key, seq);
-- the latest finished jobs of a backend (the estimates' model) without a scan
CREATE INDEX IF NOT EXISTS jobs_by_backend ON jobs (backend, state, updated_at);
-- a user's own jobs in a state (queued ones in queue order), and the jobs of each state per
-- user counted from the index alone (the live page), without a scan
CREATE INDEX IF NOT EXISTS jobs_by_state_submitter ON jobs (state, submitter, queue_key, seq);
CREATE TABLE IF NOT EXISTS transitions (
    job_id     TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    at         REAL NOT NULL,
    note       TEXT
);
CREATE INDEX IF NOT EXISTS transitions_by_job ON transitions (job_id);
CREATE TABLE IF NOT EXISTS experiments (
    job_id          TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    name            TEXT NOT NULL,
    shots_requested INTEGER NOT NULL,
    shots_expected  INTEGER,
    submitted_at    REAL,
    engaged_at      REAL,
    PRIMARY KEY (job_id, attempt, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- jobs changed whose status file may not show it yet (a kill between a commit and the
-- rendering): written in the change's own transaction, cleared once a rendering saw it
CREATE TABLE IF NOT EXISTS unpublished (
    mark   INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS unpublished_by_job ON unpublished (job_id, mark);
-- the machine's health (spooler.core.health): one row, written by the spooler's monitor only
CREATE TABLE IF NOT EXISTS machine_health (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    operational INTEGER NOT NULL,
    reasons     TEXT NOT NULL,
    since       REAL NOT NULL,
    last_check  REAL NOT NULL
);
-- device errors BLACS met on a job's shots (blame: spooler.core.health)
CREATE TABLE IF NOT EXISTS lab_faults (
    fault_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    job_id    TEXT,
    attempt   INTEGER,
    shot      TEXT,
    message   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lab_faults_by_job ON lab_faults (job_id, attempt);
-- messages for the lab's channels, written in the transaction of what they tell, sent by
-- the spooler's notifier (spooler.pipeline.notifications)
CREATE TABLE IF NOT EXISTS notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         REAL NOT NULL,
    kind       TEXT NOT NULL,
    job_id     TEXT,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    sent_at    REAL,
    tries      INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL,
    last_error TEXT,
    dropped_at REAL
);
CREATE INDEX IF NOT EXISTS notifications_unsent ON notifications (id) WHERE sent_at IS NULL
    AND dropped_at IS NULL;
"""

_JOB_COLUMNS = (
    "seq, job_id, state, attempt, backend, submitter, source_name, claim_name, detail, "
    "error_message, queue_key, experiments, shots_requested, shots_expected, shots_done, "
    "created_at, updated_at, lab_action, first_shot_at, last_shot_at, shots_made"
)

_PLACES_CHUNK = 200  # jobs per statement of Reader.queue_places (5 parameters each)

# Columns added after version 1: (table, column, declaration), added to older databases.
_ADDED_COLUMNS = (
    ("jobs", "lab_action", "TEXT"),  # version 2
    ("jobs", "first_shot_at", "REAL"),  # version 3
    ("jobs", "last_shot_at", "REAL"),
    ("jobs", "shots_made", "INTEGER NOT NULL DEFAULT 0"),  # version 4
    # version 5: how often an experiment's missing shots were made again (spooler.pipeline.recovery)
    ("experiments", "recoveries", "INTEGER NOT NULL DEFAULT 0"),
)


@dataclass(frozen=True, slots=True)
class JobRecord:
    seq: int
    job_id: str
    state: JobState
    attempt: int
    backend: str
    submitter: str | None
    source_name: str
    claim_name: str | None
    detail: str
    error_message: str | None
    queue_key: float | None
    experiments: int | None
    shots_requested: int | None
    shots_expected: int | None
    shots_done: int
    created_at: float
    updated_at: float
    lab_action: str | None = None  # what the spooler still has to do on the lab (LabAction)
    # when this attempt's first and last shot were made (``shots_made`` rose): the estimates'
    # measure of the machine
    first_shot_at: float | None = None
    last_shot_at: float | None = None
    # shots BLACS finished, as far as the result daemon has received their address files
    # (shots_done: those analysed and archived)
    shots_made: int = 0

    @property
    def shots_to_make(self) -> int | None:
        """Shots of this attempt the machine has still to make (None: not all submitted)."""
        if self.shots_expected is None:
            return None
        return max(self.shots_expected - self.shots_made, 0)

    @property
    def making_shots(self) -> bool:
        """The machine has shots of it still to make (or it is not all submitted yet)."""
        return self.shots_to_make is None or self.shots_to_make > 0

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> JobRecord:
        values = list(row)
        values[2] = JobState(values[2])
        return cls(*values)

    @property
    def notes(self) -> list[str]:
        return [n for n in self.detail.split("; ") if n]


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    attempt: int
    from_state: JobState | None
    to_state: JobState
    at: float
    note: str | None


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    job_id: str
    attempt: int
    name: str
    shots_requested: int
    shots_expected: int | None
    submitted_at: float | None
    engaged_at: float | None
    recoveries: int = 0  # the missing shots were made again this often (spooler.pipeline.recovery)


@dataclass(frozen=True, slots=True)
class HealthRow:
    """The machine's health as recorded (:mod:`spooler.core.health` reads it as a model)."""

    operational: bool
    reasons: str  # JSON: [{"component", "message", "since"}]
    since: float  # when it last changed between operational and not
    last_check: float


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """Where a queued job stands, and the sums of the queued jobs ahead of it that its
    estimates need (:mod:`spooler.core.estimates`), counted by SQL without reading those jobs."""

    position: int  # 1 runs next
    unsized_ahead: int  # jobs ahead whose shots are not known (no shots_requested)
    intervals_ahead: int  # over the jobs ahead: max(shots_requested - 1, 0), summed
    one_backend: bool  # the jobs ahead are all of this job's backend


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: int
    at: float
    kind: str
    job_id: str | None
    title: str
    body: str
    tries: int
    next_try_at: float | None


class Reader:
    """Read-only queries, usable inside and outside a transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run SQL of another table in this store (the result daemon's ledger) in this view."""
        return self._db.execute(sql, parameters)

    def unpublished(self, job_ids: Iterable[str] | None = None) -> dict[str, int]:
        """The jobs changed since their status file was last rendered (all of them, or those
        of *job_ids*), each with its latest mark."""
        if job_ids is None:
            rows = self._db.execute("SELECT job_id, MAX(mark) FROM unpublished GROUP BY job_id")
            return {job_id: int(mark) for job_id, mark in rows}
        marks = {}
        for job_id in job_ids:
            (mark,) = self._db.execute(
                "SELECT MAX(mark) FROM unpublished WHERE job_id = ?", (job_id,)
            ).fetchone()
            if mark is not None:
                marks[job_id] = int(mark)
        return marks

    def get(self, job_id: str) -> JobRecord | None:
        row = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        return None if row is None else JobRecord.from_row(row)

    def require(self, job_id: str) -> JobRecord:
        record = self.get(job_id)
        if record is None:
            raise LabspoolError(f"no job with id {job_id!r}")
        return record

    def jobs(self, *states: JobState) -> list[JobRecord]:
        if states:
            marks = ", ".join("?" for _ in states)
            sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY seq"
            rows = self._db.execute(sql, [s.value for s in states])
        else:
            rows = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY seq")
        return [JobRecord.from_row(r) for r in rows]

    def running(self) -> list[JobRecord]:
        """RUNNING jobs in the order they were engaged (the order the machine makes their
        shots in)."""
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs j WHERE state = 'RUNNING' ORDER BY "
            "(SELECT MIN(t.at) FROM transitions t WHERE t.job_id = j.job_id "
            "AND t.attempt = j.attempt AND t.to_state = 'RUNNING'), seq"
        )
        return [JobRecord.from_row(r) for r in rows]

    def queue(self, limit: int | None = None) -> list[JobRecord]:
        """QUEUED jobs in the order they will run."""
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'QUEUED' ORDER BY queue_key, seq" + (
            "" if limit is None else f" LIMIT {int(limit)}"
        )
        return [JobRecord.from_row(r) for r in self._db.execute(sql)]

    def queue_positions(self, job_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Queue positions (1 runs next) of the queued jobs among *job_ids*, in one pass."""
        rows = self._db.execute(
            "SELECT job_id, ROW_NUMBER() OVER (ORDER BY queue_key, seq) FROM jobs "
            "WHERE state = 'QUEUED'"
        )
        if job_ids is None:
            return {job_id: int(pos) for job_id, pos in rows}
        wanted = set(job_ids)
        return {job_id: int(pos) for job_id, pos in rows if job_id in wanted}

    def pending_jobs(self, backend: str) -> int:
        """The jobs of *backend* that wait for the machine or run on it (QUEUED + RUNNING)."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE backend = ? AND state IN ('QUEUED', 'RUNNING')",
            (backend,),
        ).fetchone()
        return int(count)

    def waiting_job_ids(self, submitter: str, states: Iterable[JobState]) -> set[str]:
        """The ids of *submitter*'s jobs in *states* (the gateway's quota)."""
        wanted = [state.value for state in states]
        marks = ", ".join("?" for _ in wanted)
        rows = self._db.execute(
            f"SELECT job_id FROM jobs WHERE submitter = ? AND state IN ({marks})",
            (submitter, *wanted),
        )
        return {job_id for (job_id,) in rows}

    def count_by_state(self) -> dict[JobState, int]:
        """Jobs per state, every state present (0: none); a scan of the index jobs_by_state."""
        counts = dict.fromkeys(JobState, 0)
        for state, count in self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[JobState(state)] = int(count)
        return counts

    def active_counts(self, submitter: str | None = None) -> dict[tuple[JobState, str | None], int]:
        """The jobs INITIALIZING, QUEUED or RUNNING per (state, submitter): everybody's, or
        only those of *submitter* (then through the index jobs_by_state_submitter: what it costs
        does not grow with the others' jobs)."""
        sql = (
            "SELECT state, submitter, COUNT(*) FROM jobs "
            "WHERE state IN ('INITIALIZING', 'QUEUED', 'RUNNING')"
        )
        if submitter is None:
            rows = self._db.execute(f"{sql} GROUP BY state, submitter")
        else:
            rows = self._db.execute(f"{sql} AND submitter = ? GROUP BY state", (submitter,))
        return {(JobState(state), user): int(count) for state, user, count in rows}

    def jobs_page(
        self, state: JobState, offset: int, limit: int, submitter: str | None = None
    ) -> list[JobRecord]:
        """At most *limit* jobs in *state* (everybody's, or *submitter*'s) from the
        *offset*-th (0: the first): QUEUED ones in the order they will run, others in the
        order they came."""
        order = "queue_key, seq" if state is JobState.QUEUED else "seq"
        where = "state = ?" + ("" if submitter is None else " AND submitter = ?")
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            (state.value, *(() if submitter is None else (submitter,)), int(limit), int(offset)),
        )
        return [JobRecord.from_row(r) for r in rows]

    def queue_places(self, job_ids: Iterable[str]) -> dict[str, QueuePlace]:
        """Where the queued jobs among *job_ids* (a page's: tens) stand; the others are left
        out. The queued jobs between one of them and the next are counted and summed by SQL
        (an index range each, as far as the last of them), never read into Python."""
        wanted = list(dict.fromkeys(job_ids))
        shown: list[tuple[Any, ...]] = []
        for chunk in range(0, len(wanted), _PLACES_CHUNK):
            part = wanted[chunk : chunk + _PLACES_CHUNK]
            shown += self._db.execute(
                "SELECT job_id, queue_key, seq, shots_requested, backend FROM jobs "
                f"WHERE state = 'QUEUED' AND job_id IN ({', '.join('?' for _ in part)})",
                part,
            ).fetchall()
        shown.sort(key=lambda row: (row[1], row[2]))
        gaps: list[tuple[int, int, int, str | None, str | None]] = []
        low = (float("-inf"), -1)
        for chunk in range(0, len(shown), _PLACES_CHUNK):
            bounds: list[Any] = []
            for i, (_, key, seq, _, _) in enumerate(shown[chunk : chunk + _PLACES_CHUNK]):
                bounds += (i, *low, key, seq)
                low = (key, seq)
            values = ", ".join("(?, ?, ?, ?, ?)" for _ in range(len(bounds) // 5))
            gaps += self._db.execute(
                f"WITH gap (i, low_key, low_seq, key, seq) AS (VALUES {values}) "
                "SELECT COUNT(j.seq), COALESCE(SUM(MAX(j.shots_requested - 1, 0)), 0), "
                "  COUNT(j.seq) - COUNT(j.shots_requested), MIN(j.backend), MAX(j.backend) "
                "FROM gap LEFT JOIN jobs j ON j.state = 'QUEUED' "
                "  AND (j.queue_key, j.seq) > (gap.low_key, gap.low_seq) "
                "  AND (j.queue_key, j.seq) < (gap.key, gap.seq) "
                "GROUP BY gap.i ORDER BY gap.i",
                bounds,
            ).fetchall()
        places = {}
        ahead = unsized = intervals = 0
        backends: set[str] = set()
        for (job_id, _, _, shots, backend), gap in zip(shown, gaps, strict=True):
            count, gap_intervals, gap_unsized, first, last = gap
            ahead, intervals, unsized = (
                ahead + count,
                intervals + gap_intervals,
                unsized + gap_unsized,
            )
            backends.update(b for b in (first, last) if b is not None)
            places[job_id] = QueuePlace(ahead + 1, unsized, intervals, backends <= {backend})
            ahead += 1
            intervals += 0 if shots is None else max(shots - 1, 0)
            unsized += shots is None
            backends.add(backend)
        return places

    def history(self, job_id: str) -> list[TransitionRecord]:
        rows = self._db.execute(
            "SELECT attempt, from_state, to_state, at, note FROM transitions "
            "WHERE job_id = ? ORDER BY rowid",
            (job_id,),
        )
        return [
            TransitionRecord(a, None if f is None else JobState(f), JobState(t), at, n)
            for a, f, t, at, n in rows
        ]

    def experiments(self, job_id: str, attempt: int) -> list[ExperimentRecord]:
        rows = self._db.execute(
            "SELECT job_id, attempt, name, shots_requested, shots_expected, submitted_at, "
            "engaged_at, recoveries FROM experiments WHERE job_id = ? AND attempt = ? "
            "ORDER BY rowid",
            (job_id, attempt),
        )
        return [ExperimentRecord(*row) for row in rows]

    def shot_indices_received(self, job_id: str, attempt: int, experiment: str) -> set[int]:
        """The shots of an experiment the result daemon has received (its ledger, the table
        ``shots`` of :mod:`result.ledger`; empty before the result daemon ever ran)."""
        try:
            rows = self._db.execute(
                "SELECT shot_index FROM shots WHERE job_id = ? AND attempt = ? "
                "AND experiment = ? AND shot_index IS NOT NULL",
                (job_id, attempt, experiment),
            )
            return {int(index) for (index,) in rows}
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return set()
            raise

    def shots_submitted(self, job_id: str, attempt: int) -> int:
        """Shots runmanager said it would make, over the experiments submitted so far."""
        (total,) = self._db.execute(
            "SELECT COALESCE(SUM(shots_expected), 0) FROM experiments "
            "WHERE job_id = ? AND attempt = ?",
            (job_id, attempt),
        ).fetchone()
        return int(total)

    def pending_lab_actions(self) -> list[JobRecord]:
        """Jobs with something the spooler still has to do on the lab, the job engaged last
        first: withdrawing the shots of a job from BLACS's queue then never lets BLACS start
        those of a job behind it that is being withdrawn too (one abort of three engaged jobs
        withdrawn front first let the second's first shot run)."""
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs j WHERE lab_action IS NOT NULL ORDER BY "
            "(SELECT MAX(t.at) FROM transitions t WHERE t.job_id = j.job_id "
            "AND t.to_state = 'RUNNING') DESC, seq DESC"
        )
        return [JobRecord.from_row(r) for r in rows]

    def entered(self, job_id: str, attempt: int, state: JobState) -> float | None:
        """When *job_id* first entered *state* in *attempt* (None: it has not)."""
        row = self._db.execute(
            "SELECT MIN(at) FROM transitions WHERE job_id = ? AND attempt = ? AND to_state = ?",
            (job_id, attempt, state.value),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def health(self) -> HealthRow | None:
        """The machine's health as the spooler last recorded it (None: never looked at)."""
        row = self._db.execute(
            "SELECT operational, reasons, since, last_check FROM machine_health WHERE id = 1"
        ).fetchone()
        return None if row is None else HealthRow(bool(row[0]), row[1], row[2], row[3])

    def lab_faults(self, job_id: str, attempt: int) -> list[tuple[float, str | None, str]]:
        """The device errors met on this attempt's shots: (at, shot, message), oldest first."""
        rows = self._db.execute(
            "SELECT at, shot, message FROM lab_faults WHERE job_id = ? AND attempt = ? "
            "ORDER BY fault_id",
            (job_id, attempt),
        )
        return [(float(at), shot, message) for at, shot, message in rows]

    def notifications_due(self, now: float, limit: int = 100) -> list[NotificationRow]:
        """Messages not sent nor dropped, whose next try is due, oldest first."""
        rows = self._db.execute(
            "SELECT id, at, kind, job_id, title, body, tries, next_try_at FROM notifications "
            "WHERE sent_at IS NULL AND dropped_at IS NULL "
            "AND (next_try_at IS NULL OR next_try_at <= ?) ORDER BY id LIMIT ?",
            (now, limit),
        )
        return [NotificationRow(*row) for row in rows]

    def notifications_sent_since(self, since: float) -> int:
        """Messages delivered since *since* (the rate limit's count)."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM notifications WHERE sent_at >= ?", (since,)
        ).fetchone()
        return int(count)

    def notifications_pending(self) -> int:
        """Messages neither sent nor dropped (through the index notifications_unsent)."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM notifications WHERE sent_at IS NULL AND dropped_at IS NULL"
        ).fetchone()
        return int(count)


class Transaction(Reader):
    """One write transaction; every state change of a job goes through :meth:`transition`."""

    def __init__(self, connection: sqlite3.Connection, now: float) -> None:
        super().__init__(connection)
        self.now = now
        self.touched: dict[str, None] = {}

    def mark_unpublished(self, job_ids: Iterable[str]) -> None:
        """The jobs this transaction changed: their status files are to be rendered."""
        self._db.executemany("INSERT INTO unpublished (job_id) VALUES (?)", [(j,) for j in job_ids])

    def clear_published(self, marks: dict[str, int]) -> None:
        """Renderings that saw each job up to its mark: the marks up to it are done with."""
        self._db.executemany(
            "DELETE FROM unpublished WHERE job_id = ? AND mark <= ?", list(marks.items())
        )

    def add_job(
        self,
        *,
        job_id: str | None,
        backend: str,
        source_name: str,
        claim_name: str,
        submitter: str | None = None,
        note: str = "Got your json.",
    ) -> JobRecord:
        """Record a claimed job file as INITIALIZING; ``job_id=None`` gives it a rejected.<n> id."""
        placeholder = job_id if job_id is not None else f"claim:{claim_name}"
        cursor = self._db.execute(
            "INSERT INTO jobs (job_id, state, backend, submitter, source_name, claim_name, "
            "detail, created_at, updated_at) VALUES (?, 'INITIALIZING', ?, ?, ?, ?, ?, ?, ?)",
            (placeholder, backend, submitter, source_name, claim_name, note, self.now, self.now),
        )
        seq = cursor.lastrowid
        assert seq is not None
        final_id = job_id if job_id is not None else rejected_id(seq)
        if job_id is None:
            self._db.execute("UPDATE jobs SET job_id = ? WHERE seq = ?", (final_id, seq))
        self._db.execute(
            "INSERT INTO transitions (job_id, attempt, from_state, to_state, at, note) "
            "VALUES (?, 1, NULL, 'INITIALIZING', ?, ?)",
            (final_id, self.now, note),
        )
        self.touched[final_id] = None
        return self.require(final_id)

    def transition(
        self,
        job_id: str,
        new: JobState,
        *,
        note: str | None = None,
        error_message: str | None = None,
        expect: JobState | None = None,
        new_attempt: bool = False,
    ) -> JobRecord:
        """Move *job_id* to *new*, appending *note* to its detail. Checked against the table.

        Back to QUEUED from ERROR or CANCELLED (a requeue), or with *new_attempt* (a job
        taken back from the lab), the job starts again as a new attempt."""
        record = self.require(job_id)
        if expect is not None and record.state is not expect:
            raise LabspoolError(f"job {job_id} is {record.state}, expected {expect}")
        check_transition(job_id, record.state, new)
        attempt = record.attempt
        queue_key = record.queue_key
        shots_expected, shots_done = record.shots_expected, record.shots_done
        shots_made = record.shots_made
        first_shot_at, last_shot_at = record.first_shot_at, record.last_shot_at
        if new is JobState.QUEUED:
            if new_attempt or record.state in (JobState.ERROR, JobState.CANCELLED):
                attempt += 1  # a new attempt starts from nothing; the old history stays
                error_message = None
                shots_expected, shots_done, shots_made = None, 0, 0
                first_shot_at = last_shot_at = None
            if queue_key is None:
                queue_key = float(record.seq)
        updated = dataclasses.replace(
            record,
            state=new,
            attempt=attempt,
            detail=_append(record.detail, note),
            error_message=error_message if new is not JobState.QUEUED else None,
            queue_key=queue_key,
            shots_expected=shots_expected,
            shots_done=shots_done,
            shots_made=shots_made,
            first_shot_at=first_shot_at,
            last_shot_at=last_shot_at,
            updated_at=self.now,
        )
        self._db.execute(
            "UPDATE jobs SET state = ?, attempt = ?, detail = ?, error_message = ?, "
            "queue_key = ?, shots_expected = ?, shots_done = ?, shots_made = ?, "
            "first_shot_at = ?, last_shot_at = ?, updated_at = ? WHERE job_id = ?",
            (
                new.value,
                attempt,
                updated.detail,
                updated.error_message,
                queue_key,
                shots_expected,
                shots_done,
                shots_made,
                first_shot_at,
                last_shot_at,
                self.now,
                job_id,
            ),
        )
        self._db.execute(
            "INSERT INTO transitions (job_id, attempt, from_state, to_state, at, note) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, attempt, record.state.value, new.value, self.now, note),
        )
        if new is JobState.ERROR and record.state in (JobState.QUEUED, JobState.RUNNING):
            # (a job refused at admission is the user's to read, not the lab's to be told of)
            self.notify(
                "job_error",
                f"Job {job_id} ended ERROR",
                f"{error_message or note or 'no reason given'}\n"
                f"What to do: read `labspool status {job_id}`; if the machine, not the job, "
                f"was at fault, run it again with `labspool requeue {job_id}`.",
                job_id=job_id,
            )
        if attempt != record.attempt:
            # The new attempt runs the same experiments, from nothing submitted.
            self._db.execute(
                "INSERT INTO experiments (job_id, attempt, name, shots_requested) "
                "SELECT job_id, ?, name, shots_requested FROM experiments "
                "WHERE job_id = ? AND attempt = ? ORDER BY rowid",
                (attempt, job_id, record.attempt),
            )
        self.touched[job_id] = None
        return updated

    def note(
        self, job_id: str, note: str, *, unless_last: bool = True, same_start: str | None = None
    ) -> None:
        """Append *note* to the detail (not a state change); skipped if it repeats the last note,
        or if the last note begins with *same_start* (a note whose tail moves, such as an
        estimate, is written once while the situation lasts)."""
        record = self.require(job_id)
        last = record.notes[-1:]
        if unless_last and last == [_clean(note)]:
            return
        if same_start is not None and last and last[0].startswith(_clean(same_start)):
            return
        self._db.execute(
            "UPDATE jobs SET detail = ?, updated_at = ? WHERE job_id = ?",
            (_append(record.detail, note), self.now, job_id),
        )
        self.touched[job_id] = None

    def set_counts(
        self,
        job_id: str,
        *,
        experiments: int | None = None,
        shots_requested: int | None = None,
        shots_expected: int | None = None,
        shots_done: int | None = None,
        shots_made: int | None = None,
    ) -> None:
        values = {
            "experiments": experiments,
            "shots_requested": shots_requested,
            "shots_expected": shots_expected,
            "shots_done": shots_done,
            "shots_made": shots_made,
        }
        changes = {k: v for k, v in values.items() if v is not None}
        if shots_made:
            # the count of shots made rising is the time a shot was made (the estimates' measure)
            self._db.execute(
                "UPDATE jobs SET first_shot_at = COALESCE(first_shot_at, ?), last_shot_at = ? "
                "WHERE job_id = ? AND shots_made < ?",
                (self.now, self.now, job_id, shots_made),
            )
        if changes:
            assignments = ", ".join(f"{k} = ?" for k in changes)
            self._db.execute(
                f"UPDATE jobs SET {assignments}, updated_at = ? WHERE job_id = ?",
                (*changes.values(), self.now, job_id),
            )
            self.touched[job_id] = None

    def set_queue_key(self, job_id: str, queue_key: float) -> None:
        """Place a job in the queue: queued jobs run in order of (queue_key, seq)."""
        self._db.execute(
            "UPDATE jobs SET queue_key = ?, updated_at = ? WHERE job_id = ?",
            (queue_key, self.now, job_id),
        )
        self.touched[job_id] = None

    def set_lab_action(self, job_id: str, action: str | None) -> None:
        """Record (or, with None, clear) what the spooler still has to do on the lab."""
        self._db.execute(
            "UPDATE jobs SET lab_action = ?, updated_at = ? WHERE job_id = ?",
            (action, self.now, job_id),
        )
        self.touched[job_id] = None

    def clear_claim(self, job_id: str) -> None:
        self._db.execute("UPDATE jobs SET claim_name = NULL WHERE job_id = ?", (job_id,))

    def add_experiment(self, job_id: str, attempt: int, name: str, shots_requested: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO experiments (job_id, attempt, name, shots_requested) "
            "VALUES (?, ?, ?, ?)",
            (job_id, attempt, name, shots_requested),
        )

    def experiment_submitted(
        self, job_id: str, attempt: int, name: str, shots_expected: int
    ) -> None:
        self._db.execute(
            "UPDATE experiments SET shots_expected = ?, submitted_at = ? "
            "WHERE job_id = ? AND attempt = ? AND name = ?",
            (shots_expected, self.now, job_id, attempt, name),
        )

    def experiment_recovered(self, job_id: str, attempt: int, name: str) -> int:
        """One more recovery of the experiment's missing shots; returns its number."""
        self._db.execute(
            "UPDATE experiments SET recoveries = recoveries + 1 "
            "WHERE job_id = ? AND attempt = ? AND name = ?",
            (job_id, attempt, name),
        )
        (count,) = self._db.execute(
            "SELECT recoveries FROM experiments WHERE job_id = ? AND attempt = ? AND name = ?",
            (job_id, attempt, name),
        ).fetchone()
        return int(count)

    def experiment_engaged(self, job_id: str, attempt: int, name: str) -> None:
        self._db.execute(
            "UPDATE experiments SET engaged_at = ? WHERE job_id = ? AND attempt = ? AND name = ?",
            (self.now, job_id, attempt, name),
        )

    def set_health(self, *, operational: bool, reasons: str, since: float) -> None:
        """Record the machine's health (:class:`spooler.core.health.HealthMonitor` only)."""
        self._db.execute(
            "INSERT OR REPLACE INTO machine_health (id, operational, reasons, since, last_check) "
            "VALUES (1, ?, ?, ?, ?)",
            (int(operational), reasons, since, self.now),
        )

    def checked_health(self) -> None:
        """The machine was looked at now and nothing changed."""
        self._db.execute("UPDATE machine_health SET last_check = ? WHERE id = 1", (self.now,))

    def add_lab_fault(
        self, job_id: str | None, attempt: int | None, shot: str | None, message: str
    ) -> None:
        self._db.execute(
            "INSERT INTO lab_faults (at, job_id, attempt, shot, message) VALUES (?, ?, ?, ?, ?)",
            (self.now, job_id, attempt, shot, message),
        )

    def notify(self, kind: str, title: str, body: str, *, job_id: str | None = None) -> None:
        """A message for the lab's channels, sent once this transaction is committed."""
        self._db.execute(
            "INSERT INTO notifications (at, kind, job_id, title, body) VALUES (?, ?, ?, ?, ?)",
            (self.now, kind, job_id, title, body),
        )

    def notification_sent(self, ids: Iterable[int]) -> None:
        self._db.executemany(
            "UPDATE notifications SET sent_at = ?, tries = tries + 1 WHERE id = ?",
            [(self.now, i) for i in ids],
        )

    def notification_failed(
        self, ids: Iterable[int], error: str, next_try_at: float, *, drop: bool = False
    ) -> None:
        self._db.executemany(
            "UPDATE notifications SET tries = tries + 1, last_error = ?, next_try_at = ?, "
            "dropped_at = ? WHERE id = ?",
            [(error, next_try_at, self.now if drop else None, i) for i in ids],
        )

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _clean(note: str) -> str:
    """A note as the detail keeps it: "; " separates notes, so a note never contains it."""
    return note.replace("; ", ", ")


def _append(detail: str, note: str | None) -> str:
    if not note:
        return detail
    note = _clean(note)
    return f"{detail}; {note}" if detail else note


class JobStore:
    """The database file; open one per process (and per thread that writes)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._db = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        # executescript commits on its own, so the schema is created outside a transaction;
        # every statement in it is idempotent.
        self._db.executescript(_SCHEMA)
        for table, column, declaration in _ADDED_COLUMNS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        # (once the column exists) the spooler asks for pending lab actions at every step
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS jobs_with_lab_action ON jobs (lab_action, updated_at) "
            "WHERE lab_action IS NOT NULL"
        )
        # the estimates' last shot of any job before a job's first (spooler.core.estimates) looked
        # up, not scanned for; an index changes no answer, so no new schema version: an older
        # labspool opens this store as it is
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS jobs_by_last_shot ON jobs (last_shot_at) "
            "WHERE last_shot_at IS NOT NULL"
        )
        with self.transaction() as tx:
            version = tx.meta("schema_version")
            if version is None:
                tx.set_meta("schema_version", str(SCHEMA_VERSION))
            elif int(version) > SCHEMA_VERSION:
                raise LabspoolError(
                    f"{self.path} was written by a newer labspool (schema {version})"
                )
            elif int(version) < SCHEMA_VERSION:
                tx.set_meta("schema_version", str(SCHEMA_VERSION))

    def close(self) -> None:
        self._db.close()

    def ensure_table(self, ddl: str, added: tuple[tuple[str, str, str], ...] = ()) -> None:
        """Create another component's tables (idempotent DDL) in this store, and add the
        columns *added* ((table, column, declaration)) that a table made before lacks."""
        self._db.executescript(ddl)
        for table, column, declaration in added:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    @property
    def read(self) -> Reader:
        return Reader(self._db)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction; commits (durably) when the block ends, rolls back on error."""
        self._db.execute("BEGIN IMMEDIATE")
        tx = Transaction(self._db, self.clock())
        try:
            yield tx
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """A consistent read view across several queries."""
        self._db.execute("BEGIN")
        try:
            yield Reader(self._db)
        finally:
            self._db.execute("COMMIT")
