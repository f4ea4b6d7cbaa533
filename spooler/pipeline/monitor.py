"""The health monitor: the spooler looks at the machine and records what it sees.

Every ``lab.health_interval_s`` (and before each job is engaged) it asks runmanager and
BLACS's plugin how they are (:meth:`spooler.lab.Lab.observe`) and runs the folders' checks
(:mod:`spooler.pipeline.checks`); what is wrong becomes the reasons of the one health record in the
job store (:mod:`spooler.core.health`), changed here only, in one transaction with what follows
from it:

- the machine going down or coming back leaves a notification for the lab's channels
  (:mod:`spooler.pipeline.notifications`) saying what is wrong and what to do;
- each waiting or running job's detail says why it waits ("Waiting for the machine: ...")
  whenever the reasons change, and that the machine is back when it is;
- **blame**: BLACS paused with a device in error puts the shot it was running back at the
  head of its queue, so that shot's job is the suspect. Each such fault is counted against
  the job (table ``lab_faults``); after ``limits.item_deaths_max`` of them on one attempt,
  the job ends ``ERROR`` with the device's message and its shots are withdrawn from BLACS's
  queue. A fault that BLACS does not tie to a shot (a disk, a program gone) never ends a
  job.

Shots of jobs that ended (or of an attempt taken back) that BLACS still holds in its queue
are withdrawn, so that they are never run. An ``OSError`` of the environment met while
engaging (a read-only or full shot folder) is the machine's: it is recorded as a reason
until the next look at the machine finds the folders fine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from spooler.core.errors import LabError
from spooler.core.health import (
    FAULT_SEEN_KEY,
    BlacsReport,
    Health,
    Reason,
    encode_reasons,
    from_row,
)
from spooler.core.jobs import Jobs
from spooler.core.logs import for_job
from spooler.core.settings import Settings
from spooler.core.states import FINISHED, JobState
from spooler.core.store import Transaction
from spooler.lab import Lab, LabObservation
from spooler.pipeline.checks import PreRunChecks
from spooler.pipeline.control import LabAction

__all__ = ["HealthMonitor"]

log = logging.getLogger(__name__)

WAITING = "Waiting for the machine:"

# what a person does about each component, said in the notification
WHAT_TO_DO = {
    "runmanager": "start runmanager again (on the virtual lab: labspool lab restart DIR "
    "runmanager); the jobs wait and go on by themselves, shots it lost are made again",
    "blacs": "if BLACS is not running or its queue manager stopped, start BLACS (again) "
    "with labspool's plugin (shots it lost are made again by themselves); if its queue is "
    "paused, find the cause in BLACS's log, fix it, then run `labspool lab recover` "
    "(restarts the device tabs in error, lifts the pause)",
    "device": "look at the device (BLACS's tab and log), fix it, then run "
    "`labspool lab recover`; a job whose shots keep failing it is given up by itself",
    "shot_stuck": "restart BLACS (on the virtual lab: labspool lab restart DIR blacs): a "
    "device that does not finish its part of a shot is freed by nothing else (its log in "
    "BLACS's may say why); the shots BLACS held are made again by themselves",
    "shot_folder": "free space on the shot folder or make it writable again; the spooler "
    "goes on by itself (then `labspool lab recover` if BLACS paused its queue)",
    "store": "make the store (SDS) reachable and writable with room; the daemons go on by "
    "themselves, shots stay local meanwhile",
    "lab": "configure the lab (lab.kind: runmanager) and restart the spooler",
    "spooler": "see the spooler's log (journalctl -u labspool-spooler)",
}


class HealthMonitor:
    def __init__(
        self,
        settings: Settings,
        jobs: Jobs,
        lab: Lab,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.lab = lab
        self.clock = clock
        self.checks = PreRunChecks(settings)
        self._next_at = float("-inf")
        self._environment: list[tuple[str, str]] = []  # met while engaging, until next look
        self.report: BlacsReport | None = None  # BLACS as last seen
        # the shot BLACS runs, (BLACS's instance, shot), and when this spooler first saw it
        self._running: tuple[tuple[str, str], float] | None = None
        self.looks = 0  # how often the machine was looked at (a new report each time)
        self.health = from_row(jobs.read.health(), jobs.store.clock())

    @property
    def wall_clock(self) -> Callable[[], float]:
        return self.jobs.store.clock

    def check(self, *, force: bool = False) -> Health:
        """The machine's health, looked at anew when due (or *force*) and recorded."""
        if not force and self.clock() < self._next_at:
            return self.health
        self._next_at = self.clock() + self.settings.lab.health_interval_s
        observation = self.lab.observe()
        found = self._reasons(observation)
        found += self._environment
        self._environment = []
        self.report = observation.blacs
        self.looks += 1
        self._record(found, observation.blacs)
        if observation.blacs is not None:
            try:
                self._withdraw_ended(observation.blacs)
            except Exception:  # tried again at the next look; the spooler goes on
                log.exception("internal error while withdrawing shots of ended jobs")
        return self.health

    def environment_fault(self, component: str, message: str) -> Health:
        """An error of the machine's environment met while engaging: recorded now."""
        self._environment.append((component, message))
        return self.check(force=True)

    # -- what is wrong --------------------------------------------------------------------

    def _reasons(self, observation: LabObservation) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        if not observation.configured:
            return [("lab", observation.runmanager or "no lab is configured")]
        if observation.runmanager is not None:
            found.append(("runmanager", observation.runmanager))
        report = observation.blacs
        if report is None:
            found.append(("blacs", observation.blacs_problem or "BLACS does not answer"))
        else:
            devices = "; ".join(f"{d.name}: {d.message}" for d in report.devices_in_error)
            if not report.manager_alive:
                found.append(
                    (
                        "blacs",
                        "BLACS's queue manager has stopped (an error in its own error "
                        f"handling, see BLACS's log): its {report.queued} queued shot(s) do "
                        "not run; restart BLACS",
                    )
                )
            elif report.paused:
                status = " ".join(report.status.split())
                found.append(("blacs", f"BLACS's queue is paused: {devices or status or 'paused'}"))
            else:
                found += [(f"device:{d.name}", d.message) for d in report.devices_in_error]
            stuck = self._stuck_shot(report)
            if stuck is not None:
                found.append(("shot_stuck", stuck))
        found += self.checks.folder_problems()
        return found

    def _stuck_shot(self, report: BlacsReport) -> str | None:
        """What is wrong when BLACS has run one shot for over ``lab.shot_stuck_after_s``, as
        this spooler saw it (its own clock: BLACS may run on another computer); else None."""
        if report.running is None or report.paused:
            self._running = None
            return None
        shot = (report.instance, report.running)
        if self._running is None or self._running[0] != shot:
            self._running = (shot, self.clock())
            return None
        limit = self.settings.lab.shot_stuck_after_s
        if self.clock() - self._running[1] <= limit:
            return None
        return (
            f"BLACS is stuck on the shot {Path(report.running).name}: running for over "
            f"{limit:g} s (lab.shot_stuck_after_s), a device does not finish it"
        )

    def _record(self, found: list[tuple[str, str]], report: BlacsReport | None) -> None:
        now = self.wall_clock()
        with self.jobs.change() as tx:
            row = tx.health()
            before = from_row(row, now)
            first_seen = {r.component: r.since for r in before.reasons}
            reasons = tuple(Reason(c, m, first_seen.get(c, now)) for c, m in dict(found).items())
            operational = not reasons
            flipped = row is None or row.operational != operational
            since = row.since if row is not None and not flipped else now
            encoded = encode_reasons(reasons)
            if row is not None and not flipped and row.reasons == encoded:
                tx.checked_health()
            else:
                tx.set_health(operational=operational, reasons=encoded, since=since)
            self.health = Health(operational, reasons, since, now)
            components = {r.component for r in reasons}
            if flipped or components != {r.component for r in before.reasons}:
                self._tell_jobs(tx, self.health)
            if flipped and not (row is None and operational):
                self._notify(tx, self.health)
            self._blame(tx, report)
        if flipped:
            (log.info if operational else log.warning)(
                "the machine is %s", "operational" if operational else self.health.status_msg
            )

    def _tell_jobs(self, tx: Transaction, health: Health) -> None:
        waiting = tx.jobs(JobState.QUEUED, JobState.RUNNING)
        for job in waiting:
            if health.operational:
                if job.notes[-1:] and job.notes[-1].startswith(WAITING):
                    tx.note(job.job_id, "The machine is operational again")
            else:
                tx.note(job.job_id, health.waiting_note)

    def _notify(self, tx: Transaction, health: Health) -> None:
        if any(r.component == "lab" for r in health.reasons):
            return  # no lab configured: no machine to tell of
        machine = f"{self.settings.backend} machine"
        if health.operational:
            tx.notify(
                "machine_up",
                f"The {machine} is operational again",
                "Jobs go on by themselves.\nWhat to do: nothing.",
            )
            return
        todo = dict.fromkeys(WHAT_TO_DO[r.component.partition(":")[0]] for r in health.reasons)
        body = "\n".join(f"- {r.component}: {r.message}" for r in health.reasons)
        tx.notify(
            "machine_down",
            f"The {machine} is not operational",
            f"{body}\nJobs wait (none is failed for it).\nWhat to do: " + "; ".join(todo),
        )

    # -- blame ----------------------------------------------------------------------------

    def _blame(self, tx: Transaction, report: BlacsReport | None) -> None:
        """Count a new device fault against the job whose shot BLACS put back at its head."""
        if report is None:
            return
        if not (report.paused and report.devices_in_error):
            if tx.meta(FAULT_SEEN_KEY) is not None and not report.paused:
                tx.set_meta(FAULT_SEEN_KEY, None)  # running again: the next fault is new
            return
        names = ",".join(sorted(d.name for d in report.devices_in_error))
        key = f"{report.instance}|{report.head}|{names}"
        if tx.meta(FAULT_SEEN_KEY) == key:
            return  # seen (the same pause, still)
        tx.set_meta(FAULT_SEEN_KEY, key)
        message = "; ".join(f"{d.name}: {d.message}" for d in report.devices_in_error)
        owner = (
            None
            if report.head is None
            else self.settings.folders.shot_owner(Path(report.head).parent)
        )
        job = None if owner is None else tx.get(owner[0])
        if job is None or owner is None or job.attempt != owner[1] or job.state in FINISHED:
            tx.add_lab_fault(None, None, report.head, message)
            log.warning("a device failed, on no running job's shot: %s", message)
            return
        tx.add_lab_fault(job.job_id, job.attempt, report.head, message)
        count = len(tx.lab_faults(job.job_id, job.attempt))
        limit = self.settings.limits.item_deaths_max
        shot = Path(report.head or "").name
        jlog = for_job(log, job.job_id)
        if count < limit:
            tx.note(
                job.job_id,
                f"A device failed on its shot {shot}: {message} ({count} of {limit} such "
                "failures before the job is given up)",
            )
            jlog.warning(
                "a device failed on its shot %s (%d of %d): %s", shot, count, limit, message
            )
            return
        tx.transition(
            job.job_id,
            JobState.ERROR,
            note=f"Given up: the machine's devices failed {count} times on its shots",
            error_message=(
                f"the machine's devices failed {count} times on this job's shots (the last on "
                f"{shot}): {message}"
            ),
        )
        tx.set_lab_action(job.job_id, LabAction.WITHDRAW.value)
        jlog.error("given up after %d device failures on its shots: %s", count, message)

    # -- shots of ended jobs -----------------------------------------------------------------

    def _withdraw_ended(self, report: BlacsReport) -> None:
        """BLACS's queue holds shots of a job that ended (or of an attempt taken back): take
        them out, so that the machine never runs them."""
        if not report.queued_folders:
            return  # (every look: nothing to ask the store while BLACS holds nothing)
        read = self.jobs.read
        pending = {r.job_id for r in read.pending_lab_actions()}
        stale: list[Path] = []
        for text in report.queued_folders:
            folder = Path(text)
            owner = self.settings.folders.shot_owner(folder)
            if owner is None or owner[0] in pending:
                continue  # not labspool's; or a withdrawal of its own is under way
            job = read.get(owner[0])
            if job is None or job.state in FINISHED or job.attempt > owner[1]:
                stale.append(folder)
        if not stale:
            return
        try:
            withdrawal = self.lab.withdraw(stale, abort=False)
        except LabError as exc:
            log.warning("could not withdraw shots of ended jobs from BLACS: %s", exc)
            return
        log.info(
            "took %d shot(s) of ended jobs out of BLACS's queue (%s)",
            withdrawal.removed,
            ", ".join(str(f.relative_to(self.settings.folders.shots)) for f in stale),
        )
