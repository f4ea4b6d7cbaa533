"""The job state machine: the states and, in one table, every allowed transition.

Every change of a job's state goes through :meth:`spooler.core.store.Transaction.transition`,
which checks it against :data:`TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from spooler.core.errors import IllegalTransition

__all__ = ["FINISHED", "TRANSITIONS", "JobState", "check_transition"]


class JobState(StrEnum):
    INITIALIZING = "INITIALIZING"  # taken from the dump folder, being validated and rendered
    QUEUED = "QUEUED"  # valid, waiting for the lab
    RUNNING = "RUNNING"  # engaged on the lab; shots are being made and analysed
    DONE = "DONE"  # every shot analysed and archived, result file written
    ERROR = "ERROR"  # rejected or failed; error_message says why
    CANCELLED = "CANCELLED"  # stopped by an operator


_ = JobState
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    _.INITIALIZING: frozenset({_.QUEUED, _.ERROR}),
    # QUEUED -> QUEUED re-queues a job whose engagement never reached the lab (recovery).
    _.QUEUED: frozenset({_.RUNNING, _.ERROR, _.CANCELLED}),
    # RUNNING -> QUEUED: recovery after a crash found the lab never received the job.
    _.RUNNING: frozenset({_.DONE, _.ERROR, _.CANCELLED, _.QUEUED}),
    _.DONE: frozenset(),
    # ERROR/CANCELLED -> QUEUED: an operator's requeue, as a new attempt.
    _.ERROR: frozenset({_.QUEUED}),
    _.CANCELLED: frozenset({_.QUEUED}),
}

FINISHED = frozenset({JobState.DONE, JobState.ERROR, JobState.CANCELLED})


def check_transition(job_id: str, old: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"job {job_id}: {old} -> {new} is not an allowed transition")
