"""``labspool-result reprocess``: the analysis again on archived shots, at scale.

The shots of finished jobs (``DONE``, ``ERROR``, ``CANCELLED``) are analysed again on the
configured executor (:mod:`result.executors`: worker processes, or a Dask cluster), while
the result daemon runs. How the two agree: the daemon writes a shot's file only until it is
archived, and a job's outputs only when the job ends; reprocessing takes only archived shots
of jobs that have ended (a running job is skipped and said so), and one reprocess at a time
runs on a tree (``state/reprocess.lock``). Its work copies have their own suffix, which the
daemon's tidying never touches. So two processes never write one shot.

Each shot: a task (:mod:`result.task`) copies the archived file beside itself, runs the
routines, and returns the new results with the copy's checksum; here the copy is verified
and replaces the archived file atomically, and the ledger records the new memory entry,
DataFrame row, checksum and the routines' version: the same placing as the daemon's
(:mod:`result.placing`).

At scale (``--all`` on a year's store: 100,000 jobs, millions of shots), nothing is read
whole: the jobs come :data:`WINDOW_JOBS` at a time (``--all`` and ``--since`` page through
the store's jobs in the order they came, each looked up in an index), a job's archived
shots are read when its turn comes (without their DataFrame rows), at most the executor's
capacity of tasks is in flight, and a job's outputs are rewritten as soon as its last shot
is done. What is held is a window of job names, the shots of the jobs being analysed and
those in flight, however large the store; the time grows with the shots analysed (the
progress says how far it is: jobs and shots done, shots/s).

Resumable: a shot whose ledger row carries the routines' version already is not analysed
again, so a reprocess killed at any moment and run again goes on where it was. The jobs of
a window are recorded (``reprocessing`` table) before any of their shots: each ``DONE``
job's CSVs and result JSON are rewritten, atomically, once all its shots carry the version,
also when the run that did its last shot was killed before it could.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path

from result import task as tasks
from result.analysis import load_routines
from result.executors import Executor, Finished, make_executor
from result.finishing import JobFinisher
from result.multishot import load_multishot
from result.placing import Placed, Placing
from result.reprocessreport import Progress, Report
from result.task import ShotTask, routines_version
from spooler.core.backends import get_backend
from spooler.core.errors import LabspoolError
from spooler.core.fsutil import exclusive_lock
from spooler.core.jobs import Jobs
from spooler.core.labprofile import activate_if_set
from spooler.core.logs import for_job
from spooler.core.settings import Settings
from spooler.core.states import FINISHED, JobState
from spooler.core.store.reprocessing import Reprocessing
from spooler.core.store.shots import Ledger, ShotRow

__all__ = ["WINDOW_JOBS", "Reprocessor"]

log = logging.getLogger(__name__)

SUFFIX = "reprocess"  # of its work copies (the daemon's are "work")
WINDOW_JOBS = 100  # jobs selected, then taken in one transaction, at a time


class Reprocessor:
    def __init__(
        self, settings: Settings, *, routines: tuple[str, ...] | None = None, force: bool = False
    ) -> None:
        """*routines*: instead of ``result.routines``; *force*: also the shots that carry
        their version already (a run killed then starts over)."""
        self.settings = settings
        self.force = force
        activate_if_set(settings.lab.labscript_profile)  # before a routine imports the suite
        self.routines = routines or settings.result.routines
        load_routines(self.routines)  # a routine that cannot be loaded: a ConfigError now
        load_multishot(settings.result.multishot_routines)  # so too before the lock is taken
        self.memory_routine = settings.result.memory_routine_name(self.routines)
        self.version = routines_version(self.routines)
        self.placing = Placing(SUFFIX, replacing=True)
        self._lock_fd = exclusive_lock(settings.folders.state / "reprocess.lock", "reprocess")
        try:
            self.jobs = Jobs(settings.folders)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.finisher = JobFinisher(settings, self.jobs, get_backend(settings.backend))
        self.wake = threading.Event()
        self._executor: Executor | None = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None
        self.jobs.close()
        os.close(self._lock_fd)

    # -- what to do -----------------------------------------------------------------------

    def job_ids(
        self, job_ids: Iterable[str] = (), *, every: bool = False, since: float | None = None
    ) -> list[str]:
        """The jobs named (each once), or every job (*every*), or those with a shot archived
        at or after *since* (a Unix time); unknown names are an error. (For every job of a
        large store, :meth:`selected` gives them without a list.)"""
        if every or since is not None:
            return list(self.selected(since))
        out: list[str] = []
        for job_id in job_ids:
            if self.jobs.read.get(job_id) is None:
                raise LabspoolError(f"no job {job_id}")
            if job_id not in out:
                out.append(job_id)
        return out

    def selected(self, since: float | None = None) -> Iterator[str]:
        """Every job with an archived shot (archived at or after *since*, a Unix time, if
        given) in the order they came, read :data:`WINDOW_JOBS` at a time from where the last
        window ended: never all of them at once."""
        after = 0
        while True:
            window = Reprocessing.jobs_after(self.jobs.read, after, WINDOW_JOBS, since)
            yield from (job_id for _, job_id in window)
            if len(window) < WINDOW_JOBS:
                return
            after = window[-1][0]

    def selected_count(self, since: float | None = None) -> int:
        """How many jobs :meth:`selected` gives (a look-up per job of the store)."""
        return Reprocessing.jobs_count(self.jobs.read, since)

    # -- doing it -------------------------------------------------------------------------

    def run(
        self,
        job_ids: Iterable[str],
        *,
        total: int | None = None,
        progress: Callable[[Progress], None] | None = None,
    ) -> Report:
        """Reprocess the jobs of *job_ids*, taken :data:`WINDOW_JOBS` at a time as the
        analysis gets to them (an iterator such as :meth:`selected` is never read whole);
        *total*: how many they are, for the progress (default: the length of a list)."""
        report = Report()
        if total is None:
            total = len(job_ids) if isinstance(job_ids, Sized) else 0
        state = Progress(jobs_total=total)
        tell = progress or _silent
        analysing: dict[str, int] = {}  # the jobs with shots to analyse: their attempt
        left: dict[str, int] = {}  # and how many of their shots are not done

        def job_done(job_id: str, attempt: int) -> None:
            self._finish_job(job_id, attempt, report)
            state.jobs_done += 1
            tell(state)

        def shots() -> Iterator[ShotRow]:
            """The shots to analyse, job after job, each job's read when its turn comes."""
            for window in _windows(job_ids, WINDOW_JOBS):
                report.jobs += len(window)
                for job_id, attempt in self._take(window, report, state):
                    todo = self._todo(job_id, attempt, report)
                    state.total += len(todo)
                    if not todo:
                        job_done(job_id, attempt)
                        continue
                    analysing[job_id], left[job_id] = attempt, len(todo)
                    yield from todo
            state.read_all = True

        for row, error in self._analyse(shots(), report):
            if error is None:
                report.shots += 1
                state.done += 1
            else:
                report.errors.append(error)
                state.failed += 1
                for_job(log, row.job_id or "-").error("%s", error)
            tell(state)
            assert row.job_id is not None  # a shot of to_reanalyse(job_id)
            left[row.job_id] -= 1
            if not left[row.job_id]:
                del left[row.job_id]
                job_done(row.job_id, analysing.pop(row.job_id))
        state.read_all = state.ended = True
        tell(state)
        return report

    def _take(self, window: list[str], report: Report, state: Progress) -> list[tuple[str, int]]:
        """The finished jobs of *window* recorded as taken on (one transaction), each with its
        attempt; the others skipped."""
        taken = []
        with self.jobs.change() as tx:
            for job_id in window:
                job = tx.require(job_id)
                if job.state not in FINISHED:
                    report.jobs_skipped.append(job_id)
                    state.jobs_done += 1
                    continue
                taken.append((job_id, job.attempt))
                Reprocessing.take(tx, job_id, job.attempt, self.version)
        return taken

    def _todo(self, job_id: str, attempt: int, report: Report) -> list[ShotRow]:
        """The job's archived shots that do not carry the version yet (all, with *force*)."""
        todo = []
        for row in Ledger.to_reanalyse(self.jobs.read, job_id, attempt):
            if not row.sds_path:
                continue
            if row.routines == self.version and not self.force:
                report.skipped += 1
            else:
                todo.append(row)
        return todo

    def _analyse(
        self, rows: Iterator[ShotRow], report: Report
    ) -> Iterator[tuple[ShotRow, str | None]]:
        """Each row's shot analysed again: (row, None) or (row, what failed). *rows* is read
        only as the executor has room: at most its capacity of shots in flight."""
        first = next(rows, None)
        if first is None:
            return  # no worker started for nothing
        executor = self._executor = self._executor or make_executor(
            self.settings.result.executor, self.wake, scratch=self.settings.folders.state
        )
        source = itertools.chain([first], rows)
        del first  # (held no longer than the source holds it)
        again: list[ShotRow] = []  # lost or died: submitted again before new ones
        flights: dict[str, ShotRow] = {}
        deaths: dict[str, int] = {}
        while True:
            while len(flights) < executor.capacity:
                next_row = again.pop() if again else next(source, None)
                if next_row is None:
                    break
                flights[next_row.address] = next_row
                executor.submit(self._task(next_row))
            if not flights:
                return
            executor.tick()
            finished = executor.finished()
            if not finished:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            placed: list[Placed] = []
            for item in finished:
                row = flights.pop(item.key)
                if item.retry is not None:
                    again.append(row)
                    continue
                if item.death is not None:
                    deaths[item.key] = deaths.get(item.key, 0) + 1
                    if deaths[item.key] < self.settings.limits.item_deaths_max:
                        again.append(row)
                        continue
                    yield row, f"{_shot(row)}: the process analysing it died: {item.death}"
                    continue
                failed = self._place(row, item, report)
                if failed is not None:
                    yield row, failed
                else:
                    assert item.outcome is not None and row.sds_path
                    placed.append(Placed(row, item.outcome, Path(row.sds_path)))
            if placed:
                # new copies in place: durable, then recorded in one transaction, then the
                # work copies of runs of their tasks that were killed removed (no status
                # changes: no status files to render)
                self.placing.settle(placed, self.jobs.store.transaction)
                yield from ((item.row, None) for item in placed)

    def _task(self, row: ShotRow) -> ShotTask:
        assert row.sds_path
        return ShotTask(
            address=row.address,
            source=row.sds_path,
            target=row.sds_path,
            routines=self.routines,
            memory_routine=self.memory_routine,
            suffix=SUFFIX,
        )

    def _place(self, row: ShotRow, item: Finished, report: Report) -> str | None:
        """The new copy of one shot in place of the old one (None), or what failed."""
        what = item.given_up or item.error
        if what is not None:
            return f"{_shot(row)}: {what}"
        outcome = item.outcome
        assert outcome is not None and row.sds_path
        report.workers.add(outcome.worker)
        work = Path(outcome.work) if outcome.work else None
        if outcome.kind != tasks.ANALYSED or work is None:
            if work is not None:
                work.unlink(missing_ok=True)
            return f"{_shot(row)}: {outcome.error or outcome.kind}; the archived shot is kept"
        if outcome.version != self.version:
            work.unlink(missing_ok=True)
            return (
                f"{_shot(row)}: {outcome.worker} ran other routines ({outcome.version}, not "
                f"{self.version}: its labspool or routines differ); the archived shot is kept"
            )
        if not self.placing.put(outcome, Path(row.sds_path), row, self.jobs.read):
            return f"{_shot(row)}: its new copy does not verify; the archived shot is kept"
        return None

    def _finish_job(self, job_id: str, attempt: int, report: Report) -> None:
        """A job whose every archived shot carries the version: outputs rewritten, once."""
        read = self.jobs.read
        done = Reprocessing.outputs_done(read, job_id, attempt, self.version)
        if done is None or (done and not self.force):
            return
        rows = Ledger.of_job(read, job_id, attempt)
        archived = [r for r in rows if r.state == "archived"]
        if any(r.routines != self.version for r in archived):
            return  # not all yet (failures): a later run finishes it
        job = read.require(job_id)
        if job.attempt != attempt or job.state not in FINISHED:
            return  # requeued meanwhile: its new attempt is the daemon's
        if job.state is JobState.DONE:
            self.finisher.write_outputs(job, rows)
            report.jobs_rewritten.add(job_id)
        with self.jobs.change() as tx:
            Reprocessing.outputs_written(tx, job_id, attempt, self.version)
            tx.note(
                job_id,
                f"Reprocessed {len(archived)} archived shot(s) with {self.version}",
                unless_last=False,
            )
        for_job(log, job_id).info("reprocessed with %s", self.version)


def _silent(state: Progress) -> None:
    pass


def _windows(job_ids: Iterable[str], size: int) -> Iterator[list[str]]:
    """*job_ids* in lists of *size* (the last shorter), read as they are needed."""
    source = iter(job_ids)
    while window := list(itertools.islice(source, size)):
        yield window


def _shot(row: ShotRow) -> str:
    return f"{row.job_id} {row.experiment} shot {row.shot_index} ({Path(row.local_path).name})"
