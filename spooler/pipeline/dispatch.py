"""Dispatch: the job at the head of the queue is engaged on the lab.

Pipelining (the look-ahead): BLACS waits a second before it looks at an empty queue again,
and runmanager compiles a job only once it is engaged, so a job engaged only after the one
before it finished leaves the machine idle for the finishing job's analysis, the next one's
compilation and that second. So the next job is engaged while the shots of the one before
still run: at most ``lab.look_ahead_jobs`` jobs behind the one whose shots run, and only
while at most ``lab.look_ahead_shots`` shots of the jobs before it are still to be made (a
job whose shots are all made no longer holds the machine, whatever its analysis still
does). What is not engaged stays under queue control; an engaged job none of whose shots
has run can still be taken back (:mod:`spooler.pipeline.control`). ``look_ahead_jobs: 0`` engages a
job only once every job before it finished.

Before anything is engaged the machine must be operational (:mod:`spooler.pipeline.monitor`:
runmanager
and BLACS answer, BLACS's queue is not paused, no device is in error, the shot folder and the
store take files and have room); while it is not, nothing is engaged and every waiting job's
detail says why. An ``OSError`` of the environment while engaging (a read-only or full disk)
is the machine's fault: recorded in its health, the job waits. With the machine operational,
experiments whose shots it lost are made again first (:mod:`spooler.pipeline.recovery`). Before a
new job is taken: the spooler must not be paused (with a scheduled stop, the job must be
estimated to finish before it), and the machine is looked at once more unless this pass
just did (the pre-run checks). Per experiment, in order: set the globals, the experiment file and
the shot output folder (``Folders.shot_folder``), ask how many shots runmanager will make,
record that durably as "submitted", then engage and record "engaged". The first submission
moves the job to RUNNING. A lab that stops answering while the job is engaged leaves it
waiting with the reason in its detail, asked again with exponential back-off; a lab that
refuses the job ends it ERROR with the lab's message.

Recovery: an experiment recorded as submitted but never confirmed engaged (the spooler was
killed in between, or runmanager timed out) is not blindly submitted again. If any of
its shots exists (a file in its shot folder, or an address file of BLACS's plugin naming a
shot there, wherever the result daemon has put it since), runmanager got it and it counts
as engaged. If not, the spooler
waits until ``lab.resubmit_after_s`` after the submission for files to appear, and only
then submits it again. Either way the job's detail says which it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from spooler.core.errors import LabRejected, LabUnavailable, describe_exception
from spooler.core.estimates import Estimate, estimate_jobs
from spooler.core.fsutil import is_environment_error, json_objects
from spooler.core.jobs import Jobs
from spooler.core.logs import for_job
from spooler.core.model import Experiment, Job
from spooler.core.pause import read_pause
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import ExperimentRecord, JobRecord
from spooler.core.timestamps import iso_time
from spooler.lab import Lab
from spooler.pipeline.monitor import HealthMonitor
from spooler.pipeline.recovery import ShotRecovery
from spooler.pipeline.validation import JobValidator

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
        self.monitor = HealthMonitor(settings, jobs, lab, clock=clock)
        self.recovery = ShotRecovery(settings, jobs, lab, self._load)
        self._recovery_look = 0  # the monitor's look the recovery last went by
        self.clock = clock
        self._retry_at = float("-inf")
        self._delay_s = settings.lab.retry_interval_s

    @property
    def retry_in_s(self) -> float:
        """Seconds until the lab is asked again (0 when it may be asked now)."""
        return max(0.0, self._retry_at - self.clock())

    def step(self) -> JobRecord | None:
        """Engage the next job if the lab has room; returns the job engaged.

        A RUNNING job whose experiments were not all engaged (the lab went away in between,
        or the spooler was killed) is resumed first, before anything new is taken.
        """
        if self.clock() < self._retry_at:
            return None
        looks = self.monitor.looks
        if not self.monitor.check().operational:
            return None  # the jobs' details say why (the monitor notes them)
        self._recover()
        record = self._next()
        if record is None:
            return None
        # the pre-run checks: a look at the machine now, unless this pass has just looked
        if self.monitor.looks == looks and not self.monitor.check(force=True).operational:
            return None
        try:
            engaged = self._engage(record)
        except LabUnavailable as exc:
            self.monitor.check(force=True)
            self._wait(record, str(exc))
            return None
        except OSError as exc:
            if not self._machine_fault(exc):
                raise
            self._wait(record, f"the machine's environment failed: {describe_exception(exc)}")
            return None
        except LabRejected as exc:
            self._fail(record, "The lab refused the job", str(exc))
            for_job(log, record.job_id).error("the lab refused the job: %s", exc)
            return None
        except Exception as exc:  # one job must not stop the spooler: give up the job
            for_job(log, record.job_id).exception("internal error while engaging the job")
            self._fail(
                record,
                "Internal error while engaging the job",
                f"internal error while engaging the job: {describe_exception(exc)}",
            )
            return None
        if not engaged:
            return None
        self._delay_s = self.settings.lab.retry_interval_s
        self._retry_at = float("-inf")
        self.jobs.publish_queue()
        return self.jobs.read.get(record.job_id)

    def _recover(self) -> None:
        """Make the shots the machine lost again (:mod:`spooler.pipeline.recovery`), once per
        look."""
        report = self.monitor.report
        if report is None or self.monitor.looks == self._recovery_look:
            return
        self._recovery_look = self.monitor.looks
        try:
            self.recovery.step(report.queued_folders, report.running)
        except LabUnavailable as exc:
            log.warning("recovery waits for the lab: %s", exc)
            self.monitor.check(force=True)
        except LabRejected as exc:
            log.error("runmanager refused a recovery: %s", exc)
        except Exception as exc:  # a recovery must not stop the spooler; it is tried again
            if not (isinstance(exc, OSError) and self._machine_fault(exc)):
                log.exception("internal error while recovering lost shots")

    def _machine_fault(self, exc: OSError) -> bool:
        """An error of a disk while engaging is the machine's: recorded in its health (the
        shot folder's or the store's, by the path it names). False: not such an error."""
        if not is_environment_error(exc):
            return False
        where = "shot_folder" if str(self.settings.folders.shots) in str(exc) else "store"
        self.monitor.environment_fault(where, describe_exception(exc))
        return True

    def _fail(self, record: JobRecord, note: str, message: str) -> None:
        with self.jobs.change() as tx:
            if tx.require(record.job_id).state in (JobState.QUEUED, JobState.RUNNING):
                tx.transition(record.job_id, JobState.ERROR, note=note, error_message=message)

    def _next(self) -> JobRecord | None:
        read = self.jobs.read
        running = read.jobs(JobState.RUNNING)
        for job in running:
            experiments = read.experiments(job.job_id, job.attempt)
            if any(e.engaged_at is None for e in experiments):
                return job
        if not self._room(running):
            return None
        head = read.queue(limit=1)
        if not head:
            return None
        job = head[0]
        pause = read_pause(read)
        now = self.jobs.store.clock()
        if pause is not None:
            finish = estimate_jobs(read, now, {job.job_id}).get(job.job_id, Estimate()).finish
            if not pause.allows(now, finish):
                if pause.active(now):
                    note = start = f"Waiting: the spooler is {pause.describe()}"
                else:
                    start = f"Waiting: a stop is scheduled for {iso_time(pause.at)}"
                    note = start + (
                        " and this job has no estimate yet"
                        if finish is None
                        else f" and this job would finish at about {iso_time(finish)}"
                    )
                with self.jobs.change() as tx:
                    tx.note(job.job_id, note, same_start=start)  # the finish moves each step
                return None
        return job

    def _room(self, running: list[JobRecord]) -> bool:
        """May another job be engaged behind the running ones (the look-ahead)?"""
        lab = self.settings.lab
        if lab.look_ahead_jobs == 0:
            return not running
        # the jobs whose shots are still to be made (all submitted: resumed engagements
        # were taken first)
        on_machine = [j for j in running if j.making_shots]
        if len(on_machine) > lab.look_ahead_jobs:
            return False
        return sum(j.shots_to_make or 0 for j in on_machine) <= lab.look_ahead_shots

    def _wait(self, record: JobRecord, reason: str) -> None:
        with self.jobs.change() as tx:
            tx.note(record.job_id, f"Waiting for the lab: {reason}")
        for_job(log, record.job_id).info(
            "waiting for the lab (next try in %.1f s): %s", self._delay_s, reason
        )
        self._retry_at = self.clock() + self._delay_s
        self._delay_s = min(self._delay_s * 2, self.settings.lab.retry_interval_max_s)

    def _engage(self, record: JobRecord) -> bool:
        """Engage what is left of the job; False when it has to wait (nothing was done)."""
        job = self._load(record)
        known = {e.name: e for e in self.jobs.read.experiments(record.job_id, record.attempt)}
        for experiment in job.experiments:
            current = self.jobs.read.require(record.job_id)
            if not _still_engaging(current, record):
                # Cancelled (or aborted, or taken back) by an operator while being engaged.
                for_job(log, record.job_id).info("%s: not engaging the rest", current.state)
                return True
            earlier = known.get(experiment.name)
            if earlier is not None and earlier.engaged_at is not None:
                continue
            if earlier is not None and earlier.submitted_at is not None:
                verdict = self._unconfirmed(record, earlier)
                if verdict == "wait":
                    return False
                if verdict == "engaged":
                    continue
            self._engage_experiment(record, experiment)
        return True

    def _unconfirmed(
        self, record: JobRecord, earlier: ExperimentRecord
    ) -> Literal["engaged", "wait", "resubmit"]:
        """An experiment submitted without confirmation: did runmanager get it?"""
        jlog = for_job(log, record.job_id)
        made = len(self._shots_made(record, earlier.name))
        assert earlier.submitted_at is not None
        waited_s = self.jobs.store.clock() - earlier.submitted_at
        if made:
            with self.jobs.change() as tx:
                tx.experiment_engaged(record.job_id, record.attempt, earlier.name)
                tx.note(
                    record.job_id,
                    f"Recovery: {earlier.name} was submitted without confirmation and "
                    f"runmanager has made {made} shot file(s) of it: counted as engaged, "
                    "not submitted again",
                )
            jlog.warning("recovery: %s was engaged before (%d shot files)", earlier.name, made)
            return "engaged"
        if waited_s < self.settings.lab.resubmit_after_s:
            with self.jobs.change() as tx:
                tx.note(
                    record.job_id,
                    f"Recovery: {earlier.name} was submitted without confirmation and has no "
                    "shot file yet: waiting for runmanager before submitting it again",
                )
            self._retry_at = self.clock() + min(
                self._delay_s, self.settings.lab.resubmit_after_s - waited_s
            )
            return "wait"
        with self.jobs.change() as tx:
            tx.note(
                record.job_id,
                f"Recovery: {earlier.name} was submitted without confirmation and no shot file "
                f"appeared in {waited_s:.0f} s: submitting it again",
            )
        jlog.warning("recovery: submitting %s again", earlier.name)
        return "resubmit"

    def _shots_made(self, record: JobRecord, experiment: str) -> set[str]:
        """The shots of an experiment that exist: files in its shot folder, and those BLACS's
        plugin announced (the result daemon moves shots to the store and files away their
        address files, so the folder alone can be empty although every shot was made)."""
        folders = self.settings.folders
        folder = folders.shot_folder(record.job_id, record.attempt, experiment)
        made = {p.name for p in folder.glob("*.h5")} if folder.is_dir() else set()
        pattern = f"{record.job_id}__{experiment}__*"
        places = [(folders.addresses, pattern), (folders.result_claimed, pattern)]
        places += [(folders.processed, pattern), (folders.quarantine, "*.reason.json")]
        for place, glob in places:
            for address in json_objects(place, glob):  # untrusted files
                shot = address.get("shot")
                if isinstance(shot, str) and Path(shot).parent == folder:
                    made.add(Path(shot).name)
        return made

    def _load(self, record: JobRecord) -> Job:
        path = self.settings.folders.accepted_job(record.job_id)
        return self.validator.validate_bytes(path.read_bytes())

    def _engage_experiment(self, record: JobRecord, experiment: Experiment) -> None:
        jlog = for_job(log, record.job_id)
        folders = self.settings.folders
        globals_: dict[str, object] = {
            "job_id": record.job_id,
            "experiment_name": experiment.name,
            "shots": experiment.shots,
            "attempt": record.attempt,
        }
        if experiment.seed is not None:
            globals_["seed"] = experiment.seed
        output = folders.shot_folder(record.job_id, record.attempt, experiment.name)
        output.mkdir(parents=True, exist_ok=True)
        self.lab.set_globals(globals_)
        self.lab.set_labscript_file(Path(folders.jobs / record.job_id / f"{experiment.name}.py"))
        self.lab.set_shot_output_folder(output)
        shots = self.lab.n_shots()
        with self.jobs.change() as tx:
            current = tx.require(record.job_id)
            if not _still_engaging(current, record):
                return  # cancelled or taken back since the check: nothing was engaged
            tx.experiment_submitted(record.job_id, record.attempt, experiment.name, shots)
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


def _still_engaging(current: JobRecord, engaging: JobRecord) -> bool:
    """The job is still the one being engaged: not ended, and not taken back from the lab
    (which makes it a new attempt)."""
    return current.attempt == engaging.attempt and current.state in (
        JobState.QUEUED,
        JobState.RUNNING,
    )
