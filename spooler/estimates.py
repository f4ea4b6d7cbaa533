"""Progress and time estimates, from what this machine measured.

The model, per backend, from the most recent finished jobs of that backend in the job store
(which records when each job started running, when its shot count first and last rose, and
when it was done):

- ``lead_s``: from RUNNING to the first shot done (compiling, the first shot, its analysis);
- ``per_shot_s``: from one shot done to the next, within a job;
- ``tail_s``: from the last shot done to DONE (multi-shot analysis, the result file).

A job of *n* shots then takes ``lead_s + per_shot_s * (n - 1) + tail_s``. Each is the
median over the jobs (so that one slow job, such as the first after a start, does not drag
every estimate). No finished job yet: no estimate (``None``), rather than a guess.

A running job is estimated from its progress: the shots still to come at its own measured
rate (weighed against the model's as if the model were ``PRIOR_INTERVALS`` intervals of it),
from its last shot. The machine runs one job after another in queue order, so a queued job's
estimated start is the estimated finish of everything ahead of it. A paused spooler starts
nothing: the queued jobs then have no estimated start.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .pause import read_pause
from .states import FINISHED, JobState
from .store import JobRecord, Reader

__all__ = ["DurationModel", "Estimate", "duration_model", "estimate_jobs"]

WINDOW_JOBS = 10  # recent jobs: the machine of the last hour, not of last week
PRIOR_INTERVALS = 10  # how much the model weighs against a running job's own shot rate


@dataclass(frozen=True, slots=True)
class DurationModel:
    lead_s: float
    per_shot_s: float
    tail_s: float
    samples: int

    def duration_s(self, shots: int) -> float:
        return self.lead_s + self.per_shot_s * max(shots - 1, 0) + self.tail_s


@dataclass(frozen=True, slots=True)
class Estimate:
    elapsed_s: float | None = None
    start: float | None = None
    finish: float | None = None


def duration_model(reader: Reader, backend: str, window: int = WINDOW_JOBS) -> DurationModel | None:
    """The medians over the last *window* DONE jobs of *backend* (None when there is none)."""
    rows = reader.execute(
        "SELECT j.shots_done, j.first_shot_at, j.last_shot_at, "
        "  (SELECT MIN(at) FROM transitions t WHERE t.job_id = j.job_id "
        "     AND t.attempt = j.attempt AND t.to_state = 'RUNNING'), "
        "  (SELECT MAX(at) FROM transitions t WHERE t.job_id = j.job_id "
        "     AND t.attempt = j.attempt AND t.to_state = 'DONE') "
        "FROM jobs j WHERE j.state = 'DONE' AND j.backend = ? AND j.shots_done > 0 "
        "  AND j.first_shot_at IS NOT NULL "
        "ORDER BY j.updated_at DESC LIMIT ?",
        (backend, window),
    ).fetchall()
    jobs = [
        (int(n), float(first), float(last), float(running), float(done))
        for n, first, last, running, done in rows
        if running is not None and done is not None
    ]
    if not jobs:
        return None
    lead = statistics.median(first - running for _, first, _, running, _ in jobs)
    tail = statistics.median(done - last for _, _, last, _, done in jobs)
    rates = [(last - first) / (n - 1) for n, first, last, _, _ in jobs if n > 1]
    # only one-shot jobs: the first shot's whole time is all that was measured of a shot
    per_shot = statistics.median(rates) if rates else lead
    return DurationModel(max(lead, 0.0), max(per_shot, 0.0), max(tail, 0.0), len(jobs))


def estimate_jobs(
    reader: Reader,
    now: float,
    job_ids: set[str] | None = None,
    positions: dict[str, int] | None = None,
) -> dict[str, Estimate]:
    """Elapsed time and estimated start and finish of the running and queued jobs (and of
    finished ones among *job_ids*: their elapsed time).

    With *job_ids*, the queue is walked only as far as the last of them (status files are
    rendered on every shot: a long queue behind the job must not cost each time);
    *positions* (``reader.queue_positions(job_ids)``) saves a query."""
    models: dict[str, DurationModel | None] = {}

    def model(backend: str) -> DurationModel | None:
        if backend not in models:
            models[backend] = duration_model(reader, backend)
        return models[backend]

    result: dict[str, Estimate] = {}
    machine_free = now
    for job in reader.jobs(JobState.RUNNING):
        started = reader.entered(job.job_id, job.attempt, JobState.RUNNING)
        finish = _running_finish(job, started, now, model(job.backend))
        if finish is not None:
            machine_free = max(machine_free, finish)
        result[job.job_id] = Estimate(None if started is None else now - started, started, finish)
    if job_ids is not None:
        for job_id in job_ids - result.keys():
            ended = reader.get(job_id)
            if ended is not None and ended.state in FINISHED:
                started = reader.entered(job_id, ended.attempt, JobState.RUNNING)
                if started is not None:
                    result[job_id] = Estimate(ended.updated_at - started, started, ended.updated_at)
    pause = read_pause(reader)
    cursor: float | None = None if pause is not None and pause.active(now) else machine_free
    if job_ids is None:
        ahead = reader.queue()
    else:
        if positions is None:
            positions = reader.queue_positions(job_ids)
        depth = max(positions.values(), default=0)
        ahead = reader.queue(limit=depth) if depth else []
    for job in ahead:
        m = model(job.backend)
        if cursor is None or m is None or job.shots_requested is None:
            cursor = None
            result[job.job_id] = Estimate()
            continue
        start, cursor = cursor, cursor + m.duration_s(job.shots_requested)
        result[job.job_id] = Estimate(None, start, cursor)
    return result


def _running_finish(
    job: JobRecord, started: float | None, now: float, model: DurationModel | None
) -> float | None:
    # shots_expected grows as the experiments are submitted one by one; until the last is,
    # the job's own request says better how many shots there will be.
    shots = max(job.shots_expected or 0, job.shots_requested or 0)
    if started is None or model is None or not shots:
        return None
    left = max(shots - job.shots_done, 0)
    if job.shots_done == 0 or job.first_shot_at is None or job.last_shot_at is None:
        # Not a shot yet; running late, the first one is at least due now.
        late = now + model.per_shot_s * max(left - 1, 0) + model.tail_s
        return max(started + model.duration_s(shots), late)
    intervals = job.shots_done - 1
    own = (job.last_shot_at - job.first_shot_at) / intervals if intervals else model.per_shot_s
    rate = (intervals * own + PRIOR_INTERVALS * model.per_shot_s) / (intervals + PRIOR_INTERVALS)
    # Running late (no shot for longer than the rate says): the next shot is due now.
    return max(job.last_shot_at + rate * left, now + rate * max(left - 1, 0)) + model.tail_s
