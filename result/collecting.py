"""What comes back from the executors: each finished task's shot placed, or handled otherwise.

:meth:`Collector.collect` takes what the executors have finished since they were last asked.
Each analysed work copy is verified against its task's checksum and renamed into its place
on the store; then, for all of them in one transaction, the ledger records them archived
(with their memory entry, lyse's DataFrame row and the version of the routines) together
with their jobs' counts, after which the local copies are removed and the address files
filed to ``processed`` (:mod:`result.placing`, :mod:`result.filing`).

A task may instead come back with the death of its process (counted on the shot, which
waits to be submitted again), lost by the executor (submitted again), given up by Dask (the
shot is analysed alone, here, to tell whether it is its own doing), refused or damaged (the
shot is given up: :mod:`result.giving_up`), or unable to reach the store (it waits; the pass
ends with :class:`result.archive.StoreUnavailable`).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from result import task as tasks
from result.archive import StoreUnavailable
from result.executors import Finished
from result.inhand import Flight
from result.intake import count_made
from result.parts import Step
from result.placing import Placed, Taken
from result.task import ShotOutcome
from spooler.core.errors import describe_exception
from spooler.core.fsutil import is_environment_error
from spooler.core.logs import for_job
from spooler.core.states import JobState
from spooler.core.store import Transaction
from spooler.core.store.shots import Ledger

__all__ = ["Collector"]

log = logging.getLogger(__name__)


class Collector(Step):
    """Finished tasks to archived shots (or shots waiting again, or given up)."""

    def collect(self) -> int:
        """Returns the number of shots finished (archived or given up)."""
        finished = self.executors.finished()
        shots = self.shots
        placed: list[Placed] = []
        paths: list[Path] = []  # the address files of the shots placed
        unavailable: str | None = None
        given_up = 0
        for item in finished:
            flight = shots.flights.pop(item.key, None)
            if flight is None:
                continue  # not ours any more (given up meanwhile)
            try:
                result = self._receive(flight, item)
            except Taken as exc:
                self.giving_up.give_up(flight.path, str(exc))
                given_up += 1
                continue
            except StoreUnavailable as exc:
                shots.waiting[flight.path.name] = flight.path
                unavailable = str(exc)
                continue
            except Exception as exc:
                if is_environment_error(exc):  # a disk's fault, not the shot's: it waits
                    shots.waiting[flight.path.name] = flight.path
                    unavailable = describe_exception(exc)
                    continue
                job_id = self.giving_up.job_of(item.key)
                for_job(log, job_id).exception("internal error on %s", item.key)
                self.giving_up.give_up(
                    flight.path,
                    f"internal error while archiving the shot: {describe_exception(exc)}",
                )
                given_up += 1
                continue
            if isinstance(result, Placed):
                placed.append(result)
                paths.append(flight.path)
            else:
                given_up += result
            if result:  # finished: not to be submitted again by this daemon
                shots.done(item.key)
        if placed:
            self._record(placed, paths)
        if unavailable is not None:
            raise StoreUnavailable(unavailable)
        return len(placed) + given_up

    def _receive(self, flight: Flight, item: Finished) -> Placed | int:
        """One finished task: its shot placed on the store (to be recorded), or handled
        otherwise (returns 1 if the shot is finished so, 0 if it waits again)."""
        path, name = flight.path, item.key
        shots = self.shots
        jlog = for_job(log, self.giving_up.job_of(name))
        if item.death is not None:
            with self.jobs.change() as tx:  # the death was seen: it is the shot's
                self.deaths.seen(tx, name)
            shots.last_death = item.death
            jlog.error("the process analysing %s died: %s", name, item.death)
            shots.waiting[name] = path
            return 0
        if item.retry is not None:
            jlog.warning("the executor lost the task of %s (%s): submitted again", name, item.retry)
            shots.waiting[name] = path
            return 0
        if item.given_up is not None:
            if flight.executor is not self.executors.isolated and name not in shots.suspects:
                jlog.warning(
                    "%s: %s; analysing it alone, here, to tell whether it is the shot's doing",
                    name,
                    item.given_up,
                )
                shots.suspects[name] = item.given_up
                shots.waiting[name] = path
                return 0
            self.giving_up.give_up(path, item.given_up)
            return 1
        if item.error is not None:
            jlog.error("internal error while analysing %s: %s", name, item.error)
            self.giving_up.give_up(path, f"internal error while analysing the shot: {item.error}")
            return 1
        outcome = item.outcome
        assert outcome is not None
        row = Ledger.get(self.jobs.read, name)
        if row is None or row.state not in ("received", "claimed", "analysed"):
            _discard(outcome)  # handled meanwhile
            return 0
        if outcome.kind == tasks.UNAVAILABLE:
            _discard(outcome)
            raise StoreUnavailable(outcome.error or "the store is unavailable")
        if outcome.kind == tasks.REFUSED:
            with self.jobs.change() as tx:
                self.deaths.forget(tx, name)
                Ledger.forget(tx, name)
                if row.job_id and row.attempt is not None:
                    count_made(tx, row.job_id, row.attempt)
            self.giving_up.refuse(path, outcome.error or "refused")
            return 1
        if outcome.kind == tasks.DAMAGED:
            self.giving_up.give_up(path, f"not readable as a labscript shot: {outcome.error}")
            return 1
        target = Path(flight.task.target)
        if outcome.kind != tasks.ON_STORE:
            assert outcome.work is not None
            if not self.placing.put(outcome, target, row, self.jobs.read):
                for_job(log, row.job_id or "-").error(
                    "the work copy %s is gone or does not verify; the shot is analysed again",
                    Path(outcome.work).name,
                )
                shots.waiting[name] = path
                return 0
        return Placed(row, outcome, target)

    def _record(self, placed: list[Placed], paths: list[Path]) -> None:
        """Shots in their places on the store: durable, recorded with their jobs' counts
        (and a failed analysis ends its job ERROR), tidied; then their address files filed."""
        errors: list[tuple[str, int, str]] = []

        def with_them(tx: Transaction) -> None:
            for item in placed:
                outcome, row = item.outcome, item.row
                self.deaths.forget(tx, row.address)
                if outcome.kind == tasks.FAILED and row.job_id and row.attempt is not None:
                    errors.append((row.job_id, row.attempt, outcome.error or "analysis failed"))
            for job_id, attempt in {(p.row.job_id, p.row.attempt) for p in placed}:
                job = tx.get(job_id) if job_id else None
                if job is not None and job.attempt == attempt:
                    tx.set_counts(
                        job.job_id, shots_done=Ledger.archived_count(tx, job.job_id, attempt)
                    )
            for job_id, attempt, error in errors:
                job = tx.get(job_id)
                if job is not None and job.state is JobState.RUNNING and job.attempt == attempt:
                    tx.transition(
                        job_id, JobState.ERROR, note="Analysis failed", error_message=error
                    )

        self.placing.settle(placed, self.jobs.change, also=with_them)
        for job_id, _, error in errors:
            for_job(log, job_id).error("%s", error)
        for item in placed:
            row = item.row
            job = self.jobs.read.get(row.job_id) if row.job_id else None
            if job is None or job.attempt != row.attempt or job.state is not JobState.RUNNING:
                for_job(log, row.job_id or "-").warning(
                    "shot %s belongs to no running job; archived at %s",
                    Path(row.local_path).name,
                    item.target,
                )
        self.files.file(paths)


def _discard(outcome: ShotOutcome) -> None:
    if outcome.work is not None:
        with contextlib.suppress(OSError):
            Path(outcome.work).unlink(missing_ok=True)
