"""Carrying out on the lab what operators asked for (:mod:`spooler.pipeline.control`).

A cancelled or aborted running job, or an engaged one taken back into the queue, carries a
``lab_action``; the spooler, the one process
that drives the lab, has BLACS's labspool plugin take the job's shots that have not run out
of BLACS's queue and refuse those runmanager still sends (runmanager then stops compiling
that experiment), and, for an abort, abort the running shot if it is the job's. It notes
what happened in the job's detail and clears the action. A lab that does not answer
leaves the action pending; it is tried again later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from spooler.core.errors import LabRejected, LabUnavailable, describe_exception
from spooler.core.jobs import Jobs
from spooler.core.logs import for_job
from spooler.core.settings import Settings
from spooler.core.states import FINISHED
from spooler.core.store import JobRecord
from spooler.lab import Lab
from spooler.pipeline.control import LabAction

__all__ = ["LabActions"]

log = logging.getLogger(__name__)


class LabActions:
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
        self._retry_at = float("-inf")

    def step(self) -> int:
        """Carry out the pending actions; returns how many were done."""
        if self.clock() < self._retry_at:
            return 0
        done = 0
        for record in self.jobs.read.pending_lab_actions():
            try:
                self._carry_out(record, LabAction(record.lab_action or LabAction.WITHDRAW))
            except (LabUnavailable, LabRejected) as exc:
                with self.jobs.change() as tx:
                    tx.note(record.job_id, f"Could not reach the lab to withdraw its shots: {exc}")
                for_job(log, record.job_id).warning("lab action waits: %s", exc)
                self._retry_at = self.clock() + self.settings.lab.retry_interval_s
                break
            except Exception as exc:  # one job's action must not stop the spooler
                for_job(log, record.job_id).exception("internal error while withdrawing")
                with self.jobs.change() as tx:
                    tx.set_lab_action(record.job_id, None)
                    tx.note(
                        record.job_id,
                        "Internal error while withdrawing its shots from the lab: "
                        f"{describe_exception(exc)}, not tried again (its remaining shots may "
                        "still run; they are archived as shots of no running job)",
                    )
            done += 1
        return done

    def _carry_out(self, record: JobRecord, action: LabAction) -> None:
        jlog = for_job(log, record.job_id)
        read = self.jobs.read
        # The action is of the attempt that was on the lab: the job's last one if it ended
        # (cancelled, aborted), the one before if it was taken back (queued again, or even
        # engaged again since: that attempt's shots must stay).
        last = record.attempt if record.state in FINISHED else record.attempt - 1
        folders = [
            folder
            for attempt in range(1, last + 1)
            for e in read.experiments(record.job_id, attempt)
            if e.submitted_at
            for folder in self.settings.folders.shot_folders(
                record.job_id, attempt, e.name, e.recoveries
            )
        ]
        withdrawal = self.lab.withdraw(folders, abort=action is LabAction.ABORT)
        notes = [f"{withdrawal.removed} queued shot(s) taken out of BLACS's queue"]
        if action is LabAction.ABORT:
            notes.append(
                "the running shot was aborted (BLACS drops it)"
                if withdrawal.aborted
                else "none of its shots was running"
            )
        with self.jobs.change() as tx:
            tx.set_lab_action(record.job_id, None)
            tx.note(record.job_id, "Withdrawn from the lab: " + ", ".join(notes), unless_last=False)
        jlog.info("%s done: %s", action.value, "; ".join(notes))
