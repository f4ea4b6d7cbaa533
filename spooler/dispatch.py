"""Dispatch: the job at the head of the queue is engaged on the lab.

Per experiment, in order: set the globals, the experiment file and the shot output folder
(``<shots>/<job_id>/<experiment>``), ask how many shots runmanager will make, record that
durably as "submitted", then engage and record "engaged". The first submission moves the
job to RUNNING. A lab that cannot be reached leaves the job QUEUED with the reason in its
detail and is asked again with exponential back-off; a lab that refuses the job ends it
ERROR with the lab's message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from .errors import LabRejected, LabUnavailable
from .jobs import Jobs
from .lab import Lab
from .logs import for_job
from .model import Experiment, Job
from .settings import Settings
from .states import JobState
from .store import JobRecord
from .validation import JobValidator

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        jobs: Jobs,
        lab: Lab,
        validator: JobValidator,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.lab = lab
        self.validator = validator
        self.clock = clock
        self._retry_at = float("-inf")
        self._delay_s = settings.lab.retry_interval_s

    @property
    def retry_in_s(self) -> float:
        """Seconds until the lab is asked again (0 when it may be asked now)."""
        return max(0.0, self._retry_at - self.clock())

    def step(self) -> JobRecord | None:
        """Engage the next job if the lab has room; returns the job engaged.

        A RUNNING job whose experiments were not all engaged (the lab went away in between)
        is resumed first, before anything new is taken from the queue.
        """
        if self.clock() < self._retry_at:
            return None
        record = self._next()
        if record is None:
            return None
        reason = self.lab.unavailable_reason()
        if reason is not None:
            self._wait(record, reason)
            return None
        try:
            self._engage(record)
        except LabUnavailable as exc:
            self._wait(record, str(exc))
            return None
        except LabRejected as exc:
            with self.jobs.change() as tx:
                tx.transition(
                    record.job_id,
                    JobState.ERROR,
                    note="The lab refused the job",
                    error_message=str(exc),
                )
            for_job(log, record.job_id).error("the lab refused the job: %s", exc)
            return None
        self._delay_s = self.settings.lab.retry_interval_s
        self._retry_at = float("-inf")
        self.jobs.publish_queue()
        return self.jobs.read.get(record.job_id)

    def _next(self) -> JobRecord | None:
        running = self.jobs.read.jobs(JobState.RUNNING)
        for job in running:
            experiments = self.jobs.read.experiments(job.job_id, job.attempt)
            if any(e.engaged_at is None for e in experiments):
                return job
        if len(running) >= self.settings.lab.max_engaged_jobs:
            return None
        head = self.jobs.read.queue(limit=1)
        return head[0] if head else None

    def _wait(self, record: JobRecord, reason: str) -> None:
        with self.jobs.change() as tx:
            tx.note(record.job_id, f"Waiting for the lab: {reason}")
        for_job(log, record.job_id).info(
            "waiting for the lab (next try in %.1f s): %s", self._delay_s, reason
        )
        self._retry_at = self.clock() + self._delay_s
        self._delay_s = min(self._delay_s * 2, self.settings.lab.retry_interval_max_s)

    def _engage(self, record: JobRecord) -> None:
        job = self._load(record)
        known = {e.name: e for e in self.jobs.read.experiments(record.job_id, record.attempt)}
        for experiment in job.experiments:
            earlier = known.get(experiment.name)
            if earlier is not None and earlier.engaged_at is not None:
                continue
            if earlier is not None and earlier.submitted_at is not None:
                # Submitted, but engage() never confirmed (a crash or a time-out): runmanager
                # may or may not have its shots. Say so before submitting it again.
                with self.jobs.change() as tx:
                    tx.note(
                        record.job_id,
                        f"{experiment.name} was submitted before without confirmation; "
                        "submitting it again (its shots may come twice)",
                    )
            self._engage_experiment(record, experiment)

    def _load(self, record: JobRecord) -> Job:
        path = self.settings.folders.jobs / record.job_id / "job.json"
        return self.validator.validate_bytes(path.read_bytes())

    def _engage_experiment(self, record: JobRecord, experiment: Experiment) -> None:
        jlog = for_job(log, record.job_id)
        folders = self.settings.folders
        globals_: dict[str, object] = {
            "job_id": record.job_id,
            "experiment_name": experiment.name,
            "shots": experiment.shots,
        }
        if experiment.seed is not None:
            globals_["seed"] = experiment.seed
        output = folders.shots / record.job_id / experiment.name
        output.mkdir(parents=True, exist_ok=True)
        self.lab.set_globals(globals_)
        self.lab.set_labscript_file(Path(folders.jobs / record.job_id / f"{experiment.name}.py"))
        self.lab.set_shot_output_folder(output)
        shots = self.lab.n_shots()
        with self.jobs.change() as tx:
            tx.experiment_submitted(record.job_id, record.attempt, experiment.name, shots)
            current = tx.require(record.job_id)
            note = f"Submitting {experiment.name}: {shots} shot(s)"
            if shots != experiment.shots:
                note += (
                    f" (the job asks for {experiment.shots}: another global of the apparatus "
                    "changes the number of shots)"
                )
                jlog.warning(
                    "%s: runmanager makes %d shots, the job asks for %d",
                    experiment.name,
                    shots,
                    experiment.shots,
                )
            if current.state is JobState.QUEUED:
                tx.transition(record.job_id, JobState.RUNNING, note=note)
            else:
                tx.note(record.job_id, note)
            tx.set_counts(
                record.job_id, shots_expected=tx.shots_submitted(record.job_id, record.attempt)
            )
        self.lab.engage()
        with self.jobs.change() as tx:
            tx.experiment_engaged(record.job_id, record.attempt, experiment.name)
            tx.note(record.job_id, f"Engaged {experiment.name}")
        jlog.info("engaged %s: %d shot(s) to %s", experiment.name, shots, output)
