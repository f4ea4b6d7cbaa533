"""Queue control: what an operator does to the queue, each recorded in the job's detail.

Every operation is one transaction in the job store, so it is safe while both daemons run
(SQLite serialises the writers). What has to happen on the lab itself (taking a cancelled
job's shots out of BLACS's queue, aborting the shot BLACS is running) is recorded on the
job as its ``lab_action`` and carried out by the spooler, the one process that drives the
lab (:mod:`spooler.labactions`), which notes the outcome in the detail.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import LabspoolError
from .jobs import Jobs
from .pause import PauseState, read_pause, write_pause
from .states import JobState
from .store import JobRecord, Transaction

__all__ = ["LabAction", "QueueControl"]


class LabAction(StrEnum):
    WITHDRAW = "withdraw"  # take the job's shots that have not run out of BLACS's queue
    ABORT = "abort"  # that, and abort the shot BLACS is running if it is one of the job's


def _key(record: JobRecord) -> float:
    """A queued job's sort key (0.0 is a key like any other: moving to the front makes it)."""
    return record.queue_key if record.queue_key is not None else float(record.seq)


class QueueControl:
    """The operator's commands; *by* names who gives them (``user@host``)."""

    def __init__(self, jobs: Jobs, by: str) -> None:
        self.jobs = jobs
        self.by = by

    # -- a job ---------------------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobRecord:
        """A queued job ends CANCELLED; a running one too, and its remaining shots are withdrawn."""
        with self.jobs.change() as tx:
            record = tx.require(job_id)
            if record.state is JobState.QUEUED:
                done = tx.transition(job_id, JobState.CANCELLED, note=f"Cancelled by {self.by}")
            elif record.state is JobState.RUNNING:
                done = self._stop_running(tx, record, LabAction.WITHDRAW, "Cancelled")
            else:
                raise LabspoolError(f"job {job_id} is {record.state}: there is nothing to cancel")
        self.jobs.publish_queue()
        return done

    def abort(self, job_id: str | None = None) -> list[JobRecord]:
        """Stop the running job (or every running job) now, and pause the spooler.

        The shot BLACS is running is aborted if it is the job's; a pause follows so that the
        next job does not start on a machine someone just stopped (``resume`` continues)."""
        with self.jobs.change() as tx:
            if job_id is None:
                running = tx.jobs(JobState.RUNNING)
                if not running:
                    raise LabspoolError("no job is running: there is nothing to abort")
            else:
                record = tx.require(job_id)
                if record.state is not JobState.RUNNING:
                    raise LabspoolError(f"job {job_id} is {record.state}, not RUNNING")
                running = [record]
            stopped = [self._stop_running(tx, r, LabAction.ABORT, "Aborted") for r in running]
            if read_pause(tx) is None:
                names = ", ".join(r.job_id for r in running)
                write_pause(tx, PauseState(tx.now, self.by, f"after aborting {names}"))
        self.jobs.publish_queue()
        return stopped

    def _stop_running(
        self, tx: Transaction, record: JobRecord, action: LabAction, verb: str
    ) -> JobRecord:
        note = (
            f"{verb} by {self.by} while running ({record.shots_done} of "
            f"{record.shots_expected or '?'} shot(s) made): the shots made are archived, "
            "the spooler withdraws the rest from the lab"
        )
        tx.set_lab_action(record.job_id, action.value)
        return tx.transition(record.job_id, JobState.CANCELLED, note=note)

    def requeue(self, job_id: str, *, front: bool = False) -> JobRecord:
        """Run an ERROR or CANCELLED job again from the start, as a new attempt (at the back)."""
        job_file = self.jobs.folders.jobs / job_id / "job.json"
        with self.jobs.change() as tx:
            record = tx.require(job_id)
            if record.state not in (JobState.ERROR, JobState.CANCELLED):
                raise LabspoolError(
                    f"job {job_id} is {record.state}: only ERROR or CANCELLED jobs are requeued"
                )
            if record.lab_action is not None:
                raise LabspoolError(
                    f"job {job_id}: the spooler has not yet withdrawn the shots of attempt "
                    f"{record.attempt} from the lab; requeue it once its detail says so"
                )
            if not job_file.is_file():
                raise LabspoolError(
                    f"job {job_id} was never accepted (no {job_file}): submit a corrected file"
                )
            tx.transition(
                job_id,
                JobState.QUEUED,
                note=f"Requeued by {self.by} as attempt {record.attempt + 1}",
            )
            self._place(tx, job_id, front=front)
            done = tx.require(job_id)
        self.jobs.publish_queue()
        return done

    def move(
        self, job_id: str, *, front: bool = False, back: bool = False, before: str | None = None
    ) -> int:
        """Change a queued job's place; returns its new position (1 runs next)."""
        if sum((front, back, before is not None)) != 1:
            raise LabspoolError("say exactly one of --front, --back, --before OTHER")
        with self.jobs.change() as tx:
            record = tx.require(job_id)
            if record.state is not JobState.QUEUED:
                raise LabspoolError(f"job {job_id} is {record.state}: only queued jobs move")
            if before is not None:
                self._place_before(tx, job_id, before)
                where = f"before {before}"
            else:
                self._place(tx, job_id, front=front)
                where = "to the front" if front else "to the back"
            tx.note(job_id, f"Moved {where} of the queue by {self.by}", unless_last=False)
            position = tx.queue_positions([job_id])[job_id]
        self.jobs.publish_queue()
        return position

    @staticmethod
    def _place(tx: Transaction, job_id: str, *, front: bool) -> None:
        others = [r for r in tx.queue() if r.job_id != job_id]
        if not others:
            return
        keys = [_key(r) for r in others]
        tx.set_queue_key(job_id, min(keys) - 1.0 if front else max(keys) + 1.0)

    @staticmethod
    def _place_before(tx: Transaction, job_id: str, other_id: str) -> None:
        if other_id == job_id:
            raise LabspoolError("a job cannot move before itself")
        queue = [r for r in tx.queue() if r.job_id != job_id]
        index = next((i for i, r in enumerate(queue) if r.job_id == other_id), None)
        if index is None:
            raise LabspoolError(f"job {other_id} is not queued")
        keys = [_key(r) for r in queue]
        low = keys[index - 1] if index else keys[index] - 2.0
        if not low < (low + keys[index]) / 2 < keys[index]:
            # Equal (or too close) keys: renumber the queue in its order with the queued
            # jobs' own sequence numbers. They are distinct and smaller than any later job's,
            # so jobs that arrive afterwards still queue behind.
            keys = sorted(float(r.seq) for r in queue)
            for r, key in zip(queue, keys, strict=True):
                tx.set_queue_key(r.job_id, key)
            low = keys[index - 1] if index else keys[index] - 2.0
        tx.set_queue_key(job_id, (low + keys[index]) / 2)

    # -- the spooler ---------------------------------------------------------------------------

    def pause(self, *, reason: str = "", at: float | None = None) -> PauseState:
        with self.jobs.change() as tx:
            state = PauseState(tx.now, self.by, reason, at)
            write_pause(tx, state)
        return state

    def resume(self) -> PauseState | None:
        """Lift a pause (or a scheduled stop); returns the one lifted."""
        with self.jobs.change() as tx:
            state = read_pause(tx)
            write_pause(tx, None)
        self.jobs.publish_queue()
        return state
