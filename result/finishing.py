"""A running job's end: complete (CSVs, result JSON, ``DONE``), given-up shots, or silence.

Every running job is checked after each pass of the result daemon: complete (every expected
shot archived or given up) means its CSVs and the result JSON, then ``DONE``, or ``ERROR``
if shots were given up; no new shot for ``result.shots_timeout_s`` (counted from the
machine's last shot of any job: a job engaged ahead waits behind the others' shots) means
``ERROR`` with what is missing. The outputs are built from the ledger alone, in shot order,
so it does not matter in which order the shots were analysed, nor where.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from spooler.backends import Backend
from spooler.fsutil import clear_stale_temps
from spooler.items import describe_exception
from spooler.jobs import Jobs
from spooler.logs import for_job
from spooler.settings import Settings
from spooler.states import JobState
from spooler.store import JobRecord

from .archive import StoreUnavailable
from .ledger import Ledger, ShotRow
from .outputs import experiment_frame, result_document, write_csv, write_result

__all__ = ["JobFinisher"]

log = logging.getLogger(__name__)


class JobFinisher:
    def __init__(
        self,
        settings: Settings,
        jobs: Jobs,
        backend: Backend,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.backend = backend
        self.wall_clock = wall_clock

    def check_all(self) -> None:
        for job in self.jobs.read.jobs(JobState.RUNNING):
            try:
                self.check(job)
            except StoreUnavailable:
                raise
            except Exception as exc:  # one job must not stop the others, nor the daemon
                for_job(log, job.job_id).exception("internal error while finishing the job")
                with self.jobs.change() as tx:
                    if tx.require(job.job_id).state is JobState.RUNNING:
                        tx.transition(
                            job.job_id,
                            JobState.ERROR,
                            note="Internal error while finishing the job",
                            error_message="internal error while finishing the job: "
                            + describe_exception(exc),
                        )

    def check(self, job: JobRecord) -> None:
        """Complete, timed out, or still waiting for shots."""
        experiments = self.jobs.read.experiments(job.job_id, job.attempt)
        if not experiments or any(e.engaged_at is None for e in experiments):
            return
        rows = Ledger.of_job(self.jobs.read, job.job_id, job.attempt)
        accounted: dict[str, int] = {}  # archived or given up
        for row in rows:
            if row.state in ("archived", "quarantined") and row.experiment:
                accounted[row.experiment] = accounted.get(row.experiment, 0) + 1
        missing = {
            e.name: (e.shots_expected or 0) - accounted.get(e.name, 0)
            for e in experiments
            if accounted.get(e.name, 0) < (e.shots_expected or 0)
        }
        if not missing:
            given_up = [r for r in rows if r.state == "quarantined"]
            if given_up:
                self._fail_quarantined(job, given_up)
            else:
                self._finish(job, rows)
            return
        last = Ledger.last_received_any(self.jobs.read)
        engaged = max(e.engaged_at or 0.0 for e in experiments)
        quiet_s = self.wall_clock() - max(last or 0.0, engaged)
        if quiet_s > self.settings.result.shots_timeout_s:
            what = ", ".join(f"{n} of {name}" for name, n in missing.items())
            with self.jobs.change() as tx:
                tx.transition(
                    job.job_id,
                    JobState.ERROR,
                    note="Shots stopped arriving",
                    error_message=f"no shot arrived for {quiet_s:.0f} s; missing: {what}",
                )
            for_job(log, job.job_id).error("shots stopped arriving; missing %s", what)

    def _fail_quarantined(self, job: JobRecord, given_up: list[ShotRow]) -> None:
        """Every other shot is archived, but some were given up: the job ends ERROR."""
        first = given_up[0]
        shot = Path(first.local_path).name
        message = (
            f"{len(given_up)} shot(s) given up and kept in "
            f"{self.settings.folders.quarantine}; the first: {first.experiment} shot "
            f"{first.shot_index} ({shot}): {first.error}"
        )
        with self.jobs.change() as tx:
            tx.transition(
                job.job_id,
                JobState.ERROR,
                expect=JobState.RUNNING,
                note="Shots given up (see error_message); the others are archived",
                error_message=message,
            )
        for_job(log, job.job_id).error("%s", message)

    def _finish(self, job: JobRecord, rows: list[ShotRow]) -> None:
        result_path, store, count = self.write_outputs(job, rows)
        with self.jobs.change() as tx:
            tx.transition(
                job.job_id,
                JobState.DONE,
                expect=JobState.RUNNING,
                note=(
                    f"Done: {count} shot(s) analysed; result in {result_path}, "
                    f"shots and CSVs in {store}"
                ),
            )
        for_job(log, job.job_id).info("done: %d shot(s), result %s", count, result_path)

    def write_outputs(self, job: JobRecord, rows: list[ShotRow]) -> tuple[Path, Path, int]:
        """The CSV per experiment and the result JSON, from the ledger's archived rows."""
        experiments = self.jobs.read.experiments(job.job_id, job.attempt)
        archived = [r for r in rows if r.state == "archived"]
        store = self.settings.folders.sds / job.job_id
        clear_stale_temps(store)  # of a CSV whose writing a kill cut short
        for experiment in experiments:
            shots = [r for r in archived if r.experiment == experiment.name]
            shots.sort(key=lambda r: (r.shot_index if r.shot_index is not None else -1, r.address))
            write_csv(experiment_frame(shots), store / f"{experiment.name}.csv")
        result_path = self.settings.folders.results / f"{job.job_id}.json"
        write_result(result_document(self.backend, job.job_id, experiments, archived), result_path)
        return result_path, store, len(archived)
