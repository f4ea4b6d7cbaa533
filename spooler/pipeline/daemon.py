"""The spooler daemon: one loop, drivable from tests.

``Spooler.step()`` does one pass (carry out what operators asked of the lab, take a batch
from the dump folder and admit it, then try to engage the head of the queue); the batch is
taken round-robin across the users who submitted the files (:mod:`spooler.core.intake`) and is
bounded in bytes (``PASS_MAX_BYTES``), so that one user's burst of big jobs never holds
another user's job for more than a short pass;
``run_once()`` steps until the dump folder is empty; ``run()`` (:mod:`spooler.core.watching`)
watches the folder and steps until :meth:`Spooler.request_stop`. Between steps the loop
sleeps until the folder watcher, the stop request or a timer wakes it, and at most
``CONTROL_POLL_S``: queue control commands arrive through the job store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from spooler.core.backends import get_backend
from spooler.core.intake import submitter_of
from spooler.core.logs import for_job
from spooler.core.metrics import Closer, serve_metrics
from spooler.core.settings import Folders, Settings
from spooler.core.states import JobState
from spooler.core.watching import WatchingDaemon
from spooler.lab import Lab, make_lab
from spooler.pipeline.admission import Admission
from spooler.pipeline.dispatch import Dispatcher
from spooler.pipeline.labactions import LabActions
from spooler.pipeline.notifications import Notifier
from spooler.pipeline.render import Renderer
from spooler.pipeline.validation import JobValidator

__all__ = ["CONTROL_POLL_S", "PASS_MAX_BYTES", "Spooler", "StepReport"]

log = logging.getLogger(__name__)

CONTROL_POLL_S = 0.25  # the longest a cancel, move or pause waits to be noticed
# Job file bytes taken per pass (at least one file): ~200 typical client jobs, or one to
# three jobs at a machine's limits. Admitting costs at most ~1.5 µs of CPU per byte (a job
# at the limits of the shortest instructions), so a pass stays under ~0.2 s whatever waits.
PASS_MAX_BYTES = 128 * 1024


class StepReport:
    __slots__ = ("admitted", "engaged")

    def __init__(self, admitted: int = 0, engaged: int = 0) -> None:
        self.admitted = admitted
        self.engaged = engaged


class Spooler(WatchingDaemon):
    name = "spooler"
    lock = "spooler.lock"
    _stop_metrics: Closer | None = None  # the Prometheus endpoint (metrics.listen), once run

    @staticmethod
    def watched_folders(folders: Folders) -> tuple[Path, Path]:
        return folders.dump, folders.claimed

    def __init__(
        self,
        settings: Settings,
        *,
        lab: Lab | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, clock=clock, wall_clock=wall_clock)
        self.watching = f"jobs (backend {settings.backend})"
        self.dump = self.watched
        self.dump.share_by(submitter_of)  # fair between users (issue 19)
        backend = get_backend(settings.backend)
        self.validator = JobValidator(backend, settings.limits)
        self.renderer = Renderer(backend, settings.apparatus.header, settings.apparatus.object)
        self.admission = Admission(settings, self.jobs, self.validator, self.renderer)
        lab = lab if lab is not None else make_lab(settings)
        self.lab_actions = LabActions(settings, self.jobs, lab, clock=clock)
        self.dispatcher = Dispatcher(settings, self.jobs, lab, self.validator, clock=clock)
        # the lab's notifications: a thread with its own connection, started by the loop
        self.notifications = Notifier(settings, clock=wall_clock)
        self._started = False

    def start(self) -> None:
        """Recover from a crash, then index the dump folder."""
        if self._started:
            return
        _ = self.renderer.header  # a missing or broken header stops the daemon here, clearly
        self.validator.prepare()
        recovered = self.admission.recover()
        if recovered:
            log.info("recovery finished %d job(s) left INITIALIZING", len(recovered))
        self._note_running()
        self._rescan()
        self._started = True

    def _note_running(self) -> None:
        """Say in each RUNNING job what the restarted spooler does with it."""
        read = self.jobs.read
        for job in read.jobs(JobState.RUNNING):
            experiments = read.experiments(job.job_id, job.attempt)
            unconfirmed = [e.name for e in experiments if e.engaged_at is None]
            if unconfirmed:
                note = (
                    "Recovery after a restart: the lab has not confirmed "
                    f"{', '.join(unconfirmed)}: checking for its shots before submitting again"
                )
            else:
                note = (
                    f"Recovery after a restart: all {len(experiments)} experiment(s) were "
                    "engaged before, so none is engaged again (the result daemon collects "
                    "the shots)"
                )
            with self.jobs.change() as tx:
                tx.note(job.job_id, note)
            for_job(log, job.job_id).info("%s", note)

    def _rescan(self, *, now: bool = True) -> None:
        waiting = self._look(now=now)
        if waiting:
            log.info("%d job file(s) waiting in %s", waiting, self.dump.folder)

    def step(self, *, rescan: bool = False) -> StepReport:
        """One pass: admit one batch from the dump folder, then try to engage a job."""
        self.start()
        self.lab_actions.step()
        self._rescan(now=rescan)
        batch = self.dump.take(self.settings.intake.batch_max_jobs, max_bytes=PASS_MAX_BYTES)
        claimed = [path for path in map(self.dump.claim, batch) if path is not None]
        admitted = self.admission.admit(claimed)
        engaged = self.dispatcher.step()
        return StepReport(len(admitted), int(engaged is not None))

    def run_once(self) -> StepReport:
        """Admit everything waiting in the dump folder and try the lab once; then return."""
        total = StepReport()
        if self._started:
            self._rescan()  # no watcher in this mode: look at the folder itself
        else:
            self.start()
        while True:
            report = self.step()
            total.admitted += report.admitted
            total.engaged += report.engaged
            if not len(self.dump) and report.admitted == 0:
                return total

    # -- the loop (WatchingDaemon.run) ----------------------------------------------------

    def _prepare(self) -> None:
        self.start()
        self.notifications.start()
        if self._stop_metrics is None:
            self._stop_metrics = serve_metrics(self.settings, clock=self.wall_clock)

    def close(self) -> None:
        self.notifications.close()
        if self._stop_metrics is not None:
            self._stop_metrics()
        super().close()

    def _pass(self, look: bool) -> bool:
        report = self.step(rescan=look)
        return bool(report.admitted or len(self.dump))

    def _sleep_s(self) -> float:
        timeout = min(self._until_look_s(), CONTROL_POLL_S)
        if self.jobs.read.queue(limit=1):
            timeout = min(timeout, max(self.dispatcher.retry_in_s, 0.05))
        return timeout
