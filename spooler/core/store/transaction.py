"""One write transaction of the job store: every change of a job, and every state change
through :meth:`Transaction.transition` (the one state machine, :mod:`spooler.core.states`)."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from spooler.core.errors import LabspoolError
from spooler.core.jobid import rejected_id
from spooler.core.states import JobState, check_transition
from spooler.core.store.reader import Reader
from spooler.core.store.records import JobRecord

__all__ = ["Transaction"]


class Transaction(Reader):
    """One write transaction; every state change of a job goes through :meth:`transition`."""

    def __init__(self, connection: sqlite3.Connection, now: float) -> None:
        super().__init__(connection)
        self.now = now
        self.touched: dict[str, None] = {}

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that an exception undoes alone (the rest stays)."""
        self._db.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO part")
            raise
        finally:
            self._db.execute("RELEASE part")

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
