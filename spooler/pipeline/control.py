"""Queue control: what an operator does to the queue, each recorded in the job's detail.

Every operation is one transaction in the job store, so it is safe while both daemons run
(SQLite serialises the writers). What has to happen on the lab itself (taking a cancelled
job's shots out of BLACS's queue, aborting the shot BLACS is running) is recorded on the
job as its ``lab_action`` and carried out by the spooler, the one process that drives the
lab (:mod:`spooler.pipeline.labactions`), which notes the outcome in the detail.
"""

from __future__ import annotations

from enum import StrEnum

from spooler.core.errors import LabspoolError
from spooler.core.jobs import Jobs
from spooler.core.pause import PauseState, read_pause, write_pause
from spooler.core.states import JobState
from spooler.core.store import JobRecord, Reader, Transaction

__all__ = ["LabAction", "QueueControl"]


class LabAction(StrEnum):
    WITHDRAW = "withdraw"  # take the job's shots that have not run out of BLACS's queue
    ABORT = "abort"  # that, and abort the shot BLACS is running if it is one of the job's


def _engaged_not_started(view: Reader) -> list[JobRecord]:
    """The jobs engaged ahead, none of whose shots is made, in the order they were engaged:
    behind the running job whose shots the machine is making (or about to make: that one is
    the machine's, made shots or not)."""
    jobs = [j for j in view.running() if j.lab_action is None and j.making_shots]
    return [j for j in jobs[1:] if j.shots_made == 0]


def _renumber(tx: Transaction, order: list[str]) -> None:
    """Give the queued jobs *order* (every queued job) their keys in that order: the keys
    they have, sorted, or, if two are equal, their sequence numbers (distinct, and smaller
    than any later job's, so that jobs that arrive afterwards still queue behind)."""
    records = [tx.require(job_id) for job_id in order]
    keys = sorted(_key(r) for r in records)
    if len(set(keys)) < len(keys):
        keys = sorted(float(r.seq) for r in records)
    for record, key in zip(records, keys, strict=True):
        if record.queue_key != key:
            tx.set_queue_key(record.job_id, key)


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
        job_file = self.jobs.folders.accepted_job(job_id)
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
        """Change the place of a job that has not run; returns its new position (1 runs next).

        The order moved in is that of everything that has not run: the jobs engaged ahead
        (the look-ahead, :mod:`spooler.pipeline.dispatch`) none of whose shots is made yet, then the
        queue. An engaged job that the move puts behind a job that is not engaged is taken
        back from the lab: its shots are withdrawn from BLACS's queue, and it is queued
        again, to run as a new attempt."""
        if sum((front, back, before is not None)) != 1:
            raise LabspoolError("say exactly one of --front, --back, --before OTHER")
        with self.jobs.change() as tx:
            record = tx.require(job_id)
            engaged = _engaged_not_started(tx)
            if record.state is JobState.RUNNING and job_id not in {r.job_id for r in engaged}:
                raise LabspoolError(
                    f"job {job_id} is running ({record.shots_made} of its shots made): only "
                    "jobs engaged behind it, none of whose shots is made, move (cancel it "
                    "instead)"
                )
            if record.state not in (JobState.QUEUED, JobState.RUNNING):
                raise LabspoolError(f"job {job_id} is {record.state}: only queued jobs move")
            order = [r.job_id for r in engaged] + [r.job_id for r in tx.queue()]
            order.remove(job_id)
            if before is not None:
                if before == job_id:
                    raise LabspoolError("a job cannot move before itself")
                if before not in order:
                    raise LabspoolError(
                        f"job {before} is not queued (nor engaged with none of its shots made)"
                    )
                order.insert(order.index(before), job_id)
                where = f"before {before}"
            else:
                order.insert(0 if front else len(order), job_id)
                where = "to the front" if front else "to the back"
            # The engaged jobs that the new order still has first, in the order they were
            # engaged (their shots wait in BLACS's queue in that order), stay engaged.
            engaged_at = {r.job_id: n for n, r in enumerate(engaged)}
            kept: list[str] = []
            for other in order:
                n = engaged_at.get(other)
                if n is None or (kept and n < engaged_at[kept[-1]]):
                    break
                kept.append(other)
            for taken in (r for r in engaged if r.job_id not in kept):
                why = (
                    f"moved {where} by {self.by}"
                    if taken.job_id == job_id
                    else f"{job_id} was moved ahead of it by {self.by}"
                )
                self._take_back(tx, taken, why)
            if record.state is JobState.QUEUED:
                tx.note(job_id, f"Moved {where} of the queue by {self.by}", unless_last=False)
            _renumber(tx, order[len(kept) :])
        self.jobs.publish_queue()
        return order.index(job_id) + 1

    def _take_back(self, tx: Transaction, record: JobRecord, why: str) -> None:
        """An engaged job none of whose shots is made goes back to the queue as a new attempt;
        the spooler withdraws the old attempt's shots from the lab."""
        tx.set_lab_action(record.job_id, LabAction.WITHDRAW.value)
        tx.transition(
            record.job_id,
            JobState.QUEUED,
            new_attempt=True,
            note=(
                f"Taken back from the lab before any of its shots was made ({why}): the "
                "spooler withdraws its shots from BLACS's queue, and it runs again as attempt "
                f"{record.attempt + 1}"
            ),
        )

    @staticmethod
    def _place(tx: Transaction, job_id: str, *, front: bool) -> None:
        others = [r for r in tx.queue() if r.job_id != job_id]
        if not others:
            return
        keys = [_key(r) for r in others]
        tx.set_queue_key(job_id, min(keys) - 1.0 if front else max(keys) + 1.0)

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
