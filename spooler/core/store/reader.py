"""Read-only queries of the job store, each with a name; usable inside and outside a
transaction (:class:`spooler.core.store.transaction.Transaction` is a Reader too)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from spooler.core.errors import LabspoolError
from spooler.core.states import JobState
from spooler.core.store.records import (
    JOB_COLUMNS,
    ExperimentRecord,
    HealthRow,
    JobRecord,
    QueuePlace,
    TransitionRecord,
)

__all__ = ["Reader"]

_PLACES_CHUNK = 200  # jobs per statement of Reader.queue_places (5 parameters each)
_PAGE_CHUNK = 500  # jobs per statement of Reader.histories and Reader.entered_each


def chunks(job_ids: Iterable[str]) -> Iterator[list[str]]:
    """*job_ids* in lists of at most :data:`_PAGE_CHUNK` (SQLite's parameters are limited)."""
    ids = list(dict.fromkeys(job_ids))
    for start in range(0, len(ids), _PAGE_CHUNK):
        yield ids[start : start + _PAGE_CHUNK]


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
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)
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
            sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY seq"
            rows = self._db.execute(sql, [s.value for s in states])
        else:
            rows = self._db.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY seq")
        return [JobRecord.from_row(r) for r in rows]

    def running(self) -> list[JobRecord]:
        """RUNNING jobs in the order they were engaged (the order the machine makes their
        shots in)."""
        rows = self._db.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs j WHERE state = 'RUNNING' ORDER BY "
            "(SELECT MIN(t.at) FROM transitions t WHERE t.job_id = j.job_id "
            "AND t.attempt = j.attempt AND t.to_state = 'RUNNING'), seq"
        )
        return [JobRecord.from_row(r) for r in rows]

    def queue(self, limit: int | None = None) -> list[JobRecord]:
        """QUEUED jobs in the order they will run."""
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'QUEUED' ORDER BY queue_key, seq" + (
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
        """Jobs per state, every state present (0: none), as the store keeps them (the table
        ``job_counts``, changed by triggers with every job: its cost does not grow with them)."""
        counts = dict.fromkeys(JobState, 0)
        for state, count in self._db.execute("SELECT state, jobs FROM job_counts"):
            with contextlib.suppress(ValueError):  # (a state of a later version: not shown)
                counts[JobState(state)] = max(int(count), 0)
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

    def last_ended(
        self, states: Iterable[JobState], submitter: str | None, limit: int
    ) -> list[JobRecord]:
        """The *limit* jobs in *states* (of *submitter*; everybody's: None) that changed
        last, newest first: the last *limit* of each state from its index, merged (one
        query over all the states would sort every finished job)."""
        found: list[JobRecord] = []
        for state in dict.fromkeys(states):
            sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?"
            args: list[object] = [state.value]
            if submitter is not None:  # the user's own, then sorted: never every job's
                sql = f"SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_by_state_submitter "
                sql += "WHERE state = ? AND submitter = ?"
                args.append(submitter)
            sql += " ORDER BY updated_at DESC, seq DESC LIMIT ?"
            rows = self._db.execute(sql, (*args, limit))
            found.extend(JobRecord.from_row(r) for r in rows)
        found.sort(key=lambda r: (r.updated_at, r.seq), reverse=True)
        return found[:limit]

    def jobs_page(
        self, state: JobState, offset: int, limit: int, submitter: str | None = None
    ) -> list[JobRecord]:
        """At most *limit* jobs in *state* (everybody's, or *submitter*'s) from the
        *offset*-th (0: the first): QUEUED ones in the order they will run, others in the
        order they came."""
        order = "queue_key, seq" if state is JobState.QUEUED else "seq"
        where = "state = ?" + ("" if submitter is None else " AND submitter = ?")
        rows = self._db.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
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

    def histories(self, job_ids: Iterable[str]) -> dict[str, list[TransitionRecord]]:
        """The history of each of *job_ids* (a page's: hundreds), as :meth:`history` gives
        it, in one statement per :data:`_PAGE_CHUNK` jobs (index transitions_by_job); a job
        without a transition (or not in the store) is left out."""
        found: dict[str, list[TransitionRecord]] = {}
        for part in chunks(job_ids):
            rows = self._db.execute(  # (ORDER BY rowid would walk the whole table)
                "SELECT rowid, job_id, attempt, from_state, to_state, at, note FROM transitions "
                "INDEXED BY transitions_by_job "
                f"WHERE job_id IN ({', '.join('?' for _ in part)})",
                part,
            ).fetchall()
            rows.sort(key=lambda row: int(row[0]))
            for _, job_id, a, f, t, at, n in rows:
                record = TransitionRecord(a, None if f is None else JobState(f), JobState(t), at, n)
                found.setdefault(job_id, []).append(record)
        return found

    def with_histories(self, histories: Mapping[str, list[TransitionRecord]]) -> Reader:
        """This view, its :meth:`history` of the jobs of *histories* (a page's, read at once
        by :meth:`histories`) answered from there: a document rendered per job, without a
        statement per job (a job not in *histories*, and every other query, ask the store)."""
        return _KnownHistories(self._db, histories)

    def entered_each(self, jobs: Iterable[tuple[str, int]], state: JobState) -> dict[str, float]:
        """When each of *jobs* (job id, attempt) first entered *state* in that attempt, as
        :meth:`entered` says it, in one statement per :data:`_PAGE_CHUNK` jobs; a job that has
        not entered it is left out."""
        attempts = dict(jobs)
        found: dict[str, float] = {}
        for part in chunks(attempts):
            rows = self._db.execute(
                "SELECT job_id, attempt, MIN(at) FROM transitions INDEXED BY transitions_by_job "
                f"WHERE job_id IN ({', '.join('?' for _ in part)}) AND to_state = ? "
                "GROUP BY job_id, attempt",
                (*part, state.value),
            )
            for job_id, attempt, at in rows:
                if attempts.get(job_id) == attempt:
                    found[job_id] = float(at)
        return found

    def jobs_from(
        self, state: JobState, seq: int | None, limit: int, *, newest_first: bool = False
    ) -> list[JobRecord]:
        """At most *limit* jobs in *state* in the order they came, after the one numbered *seq*
        (None: from the first); *newest_first*: in the other order, before *seq*. Read
        through the index jobs_by_state_seq from where the last page ended (keyset pages):
        every page costs what the first did, however many jobs the store holds."""
        after, order = ("<", "DESC") if newest_first else (">", "")
        rows = self._db.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_by_state_seq WHERE state = ? "
            f"AND seq {after} ? ORDER BY seq {order} LIMIT ?",
            (state.value, (2**63 - 1 if newest_first else -1) if seq is None else seq, limit),
        )
        return [JobRecord.from_row(r) for r in rows]

    def queue_from(self, after: JobRecord | None, limit: int) -> list[JobRecord]:
        """At most *limit* QUEUED jobs in the order they will run, behind the queued job
        *after* (None: from the head); a keyset page of the index jobs_by_state, as
        :meth:`jobs_from`."""
        sql = f"SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_by_state WHERE state = 'QUEUED' "
        if after is None or after.queue_key is None:  # (a queued job always has a key)
            rows = self._db.execute(f"{sql} ORDER BY queue_key, seq LIMIT ?", (limit,))
        else:
            rows = self._db.execute(
                f"{sql} AND (queue_key, seq) > (?, ?) ORDER BY queue_key, seq LIMIT ?",
                (after.queue_key, after.seq, limit),
            )
        return [JobRecord.from_row(r) for r in rows]

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
        ``shots`` of :mod:`spooler.core.store.shots`; empty before the result daemon ever ran)."""
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
            f"SELECT {JOB_COLUMNS} FROM jobs j WHERE lab_action IS NOT NULL ORDER BY "
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


class _KnownHistories(Reader):
    """A view whose histories of some jobs were read before (:meth:`Reader.with_histories`)."""

    def __init__(
        self, connection: sqlite3.Connection, histories: Mapping[str, list[TransitionRecord]]
    ) -> None:
        super().__init__(connection)
        self._histories = histories

    def history(self, job_id: str) -> list[TransitionRecord]:
        known = self._histories.get(job_id)
        return list(known) if known is not None else super().history(job_id)
