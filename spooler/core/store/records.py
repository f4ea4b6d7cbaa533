"""The rows of the job store as Python values: a job, a transition of its history, an
experiment, the machine's health, a queued job's place, a notice to send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spooler.core.states import JobState

__all__ = [
    "JOB_COLUMNS",
    "ExperimentRecord",
    "HealthRow",
    "JobRecord",
    "NotificationRow",
    "QueuePlace",
    "TransitionRecord",
]

JOB_COLUMNS = (
    "seq, job_id, state, attempt, backend, submitter, source_name, claim_name, detail, "
    "error_message, queue_key, experiments, shots_requested, shots_expected, shots_done, "
    "created_at, updated_at, lab_action, first_shot_at, last_shot_at, shots_made"
)


@dataclass(frozen=True, slots=True)
class JobRecord:
    seq: int
    job_id: str
    state: JobState
    attempt: int
    backend: str
    submitter: str | None
    source_name: str
    claim_name: str | None
    detail: str
    error_message: str | None
    queue_key: float | None
    experiments: int | None
    shots_requested: int | None
    shots_expected: int | None
    shots_done: int
    created_at: float
    updated_at: float
    lab_action: str | None = None  # what the spooler still has to do on the lab (LabAction)
    # when this attempt's first and last shot were made (``shots_made`` rose): the estimates'
    # measure of the machine
    first_shot_at: float | None = None
    last_shot_at: float | None = None
    # shots BLACS finished, as far as the result daemon has received their address files
    # (shots_done: those analysed and archived)
    shots_made: int = 0

    @property
    def shots_to_make(self) -> int | None:
        """Shots of this attempt the machine has still to make (None: not all submitted)."""
        if self.shots_expected is None:
            return None
        return max(self.shots_expected - self.shots_made, 0)

    @property
    def making_shots(self) -> bool:
        """The machine has shots of it still to make (or it is not all submitted yet)."""
        return self.shots_to_make is None or self.shots_to_make > 0

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> JobRecord:
        values = list(row)
        values[2] = JobState(values[2])
        return cls(*values)

    @property
    def notes(self) -> list[str]:
        return [n for n in self.detail.split("; ") if n]


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    attempt: int
    from_state: JobState | None
    to_state: JobState
    at: float
    note: str | None


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    job_id: str
    attempt: int
    name: str
    shots_requested: int
    shots_expected: int | None
    submitted_at: float | None
    engaged_at: float | None
    recoveries: int = 0  # the missing shots were made again this often (spooler.pipeline.recovery)


@dataclass(frozen=True, slots=True)
class HealthRow:
    """The machine's health as recorded (:mod:`spooler.core.health` reads it as a model)."""

    operational: bool
    reasons: str  # JSON: [{"component", "message", "since"}]
    since: float  # when it last changed between operational and not
    last_check: float


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """Where a queued job stands, and the sums of the queued jobs ahead of it that its
    estimates need (:mod:`spooler.core.estimates`), counted by SQL without reading those jobs."""

    position: int  # 1 runs next
    unsized_ahead: int  # jobs ahead whose shots are not known (no shots_requested)
    intervals_ahead: int  # over the jobs ahead: max(shots_requested - 1, 0), summed
    one_backend: bool  # the jobs ahead are all of this job's backend


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: int
    at: float
    kind: str
    job_id: str | None
    title: str
    body: str
    tries: int
    next_try_at: float | None
