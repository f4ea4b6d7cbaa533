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
(:mod:`result.placing`). At most the executor's capacity of tasks is in flight (a bounded
window, however many shots there are).

Resumable: a shot whose ledger row carries the routines' version already is not analysed
again, so a reprocess killed at any moment and run again goes on where it was. The jobs a
run takes on are recorded (``reprocessing`` table) before any shot: each ``DONE`` job's CSVs
and result JSON are rewritten, atomically, once all its shots carry the version, also when
the run that did its last shot was killed before it could.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from result import task as tasks
from result.analysis import load_routines
from result.executors import Executor, Finished, make_executor
from result.finishing import JobFinisher
from result.multishot import load_multishot
from result.placing import Placed, Placing
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

__all__ = ["Progress", "Report", "Reprocessor", "progress_printer"]

log = logging.getLogger(__name__)

SUFFIX = "reprocess"  # of its work copies (the daemon's are "work")


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.started)
        rate = (self.done + self.failed) / elapsed
        left = self.total - self.done - self.failed
        eta = f", {left / rate:.0f} s left" if rate > 0 and left else ""
        share = 100.0 * (self.done + self.failed) / self.total if self.total else 100.0
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"reprocessing: {self.done + self.failed}/{self.total} shots ({share:.0f}%)"
            f"{failed}, {rate:.1f} shots/s{eta}"
        )


@dataclass
class Report:
    shots: int = 0  # reprocessed now
    skipped: int = 0  # carried the version already
    errors: list[str] = field(default_factory=list)
    jobs_rewritten: list[str] = field(default_factory=list)
    jobs_skipped: list[str] = field(default_factory=list)  # not finished
    workers: set[str] = field(default_factory=set)  # host:pid of the processes that ran tasks


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
        """The jobs named, or every job (*every*), or those with a shot archived at or after
        *since* (a Unix time); unknown names are an error."""
        read = self.jobs.read
        if every or since is not None:
            found = Ledger.jobs_archived(read, since)
            return [j.job_id for j in read.jobs() if j.job_id in found]
        out = []
        for job_id in job_ids:
            if read.get(job_id) is None:
                raise LabspoolError(f"no job {job_id}")
            out.append(job_id)
        return out

    # -- doing it -------------------------------------------------------------------------

    def run(
        self,
        job_ids: list[str],
        *,
        progress: Callable[[Progress], None] | None = None,
    ) -> Report:
        report = Report()
        todo: list[ShotRow] = []
        jobs: list[tuple[str, int]] = []
        with self.jobs.change() as tx:
            for job_id in job_ids:
                job = tx.require(job_id)
                if job.state not in FINISHED:
                    report.jobs_skipped.append(job_id)
                    continue
                jobs.append((job_id, job.attempt))
                Reprocessing.take(tx, job_id, job.attempt, self.version)
        for job_id, attempt in jobs:
            for row in Ledger.of_job(self.jobs.read, job_id, attempt):
                if row.state != "archived" or not row.sds_path:
                    continue
                if row.routines == self.version and not self.force:
                    report.skipped += 1
                else:
                    todo.append(row)
        state = Progress(total=len(todo))
        for outcome_row, error in self._analyse(todo, report):
            if error is None:
                report.shots += 1
                state.done += 1
            else:
                report.errors.append(error)
                state.failed += 1
                for_job(log, outcome_row.job_id or "-").error("%s", error)
            if progress is not None:
                progress(state)
        for job_id, attempt in jobs:
            self._finish_job(job_id, attempt, report)
        return report

    def _analyse(self, rows: list[ShotRow], report: Report) -> Iterator[tuple[ShotRow, str | None]]:
        """Each row's shot analysed again: (row, None) or (row, what failed)."""
        if not rows:
            return
        executor = self._executor = self._executor or make_executor(
            self.settings.result.executor, self.wake, scratch=self.settings.folders.state
        )
        waiting = list(reversed(rows))
        flights: dict[str, ShotRow] = {}
        deaths: dict[str, int] = {}
        while waiting or flights:
            while waiting and len(flights) < executor.capacity:
                row = waiting.pop()
                flights[row.address] = row
                executor.submit(self._task(row))
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
                    waiting.append(row)
                    continue
                if item.death is not None:
                    deaths[item.key] = deaths.get(item.key, 0) + 1
                    if deaths[item.key] < self.settings.limits.item_deaths_max:
                        waiting.append(row)
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
            report.jobs_rewritten.append(job_id)
        with self.jobs.change() as tx:
            Reprocessing.outputs_written(tx, job_id, attempt, self.version)
            tx.note(
                job_id,
                f"Reprocessed {len(archived)} archived shot(s) with {self.version}",
                unless_last=False,
            )
        for_job(log, job_id).info("reprocessed with %s", self.version)


def _shot(row: ShotRow) -> str:
    return f"{row.job_id} {row.experiment} shot {row.shot_index} ({Path(row.local_path).name})"


def progress_printer(stream: TextIO) -> Callable[[Progress], None]:
    """A progress bar on a terminal (one line, redrawn), else a line every 5 s."""
    tty = stream.isatty()
    last = [0.0]

    def show(state: Progress) -> None:
        now = time.monotonic()
        end = state.done + state.failed >= state.total
        if tty:
            stream.write("\r" + state.line() + ("\n" if end else ""))
        elif end or now - last[0] >= 5.0:
            stream.write(state.line() + "\n")
            last[0] = now
        stream.flush()

    return show
