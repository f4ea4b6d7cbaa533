"""Progress and time estimates, from what this machine measured.

The model, per backend: a job takes ``overhead_s + per_shot_s * shots`` from RUNNING to
DONE, fitted (least squares) to the most recent finished jobs of that backend in the job
store, whose transitions record when each job started running and when it was done. With
jobs of one size only, the overhead cannot be told from the shots: the median time per
shot is used (the median, so that one slow job, such as the first after a start, does not
drag every estimate). No finished job yet: no estimate (``None``), rather than a guess.

The machine runs one job after another in queue order, so a queued job's estimated start
is the estimated finish of everything ahead of it. A paused spooler starts nothing: the
queued jobs then have no estimated start.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .pause import read_pause
from .states import FINISHED, JobState
from .store import JobRecord, Reader

__all__ = ["DurationModel", "Estimate", "duration_model", "estimate_jobs"]

WINDOW_JOBS = 10  # recent jobs: the machine of the last hour, not of last week


@dataclass(frozen=True, slots=True)
class DurationModel:
    overhead_s: float
    per_shot_s: float
    samples: int

    def duration_s(self, shots: int) -> float:
        return self.overhead_s + self.per_shot_s * shots


@dataclass(frozen=True, slots=True)
class Estimate:
    elapsed_s: float | None = None
    start: float | None = None
    finish: float | None = None


def duration_model(reader: Reader, backend: str, window: int = WINDOW_JOBS) -> DurationModel | None:
    """The fit to the last *window* DONE jobs of *backend* (None when there is none)."""
    rows = reader.execute(
        "SELECT j.shots_expected, "
        "  (SELECT MIN(at) FROM transitions t WHERE t.job_id = j.job_id "
        "     AND t.attempt = j.attempt AND t.to_state = 'RUNNING'), "
        "  (SELECT MAX(at) FROM transitions t WHERE t.job_id = j.job_id "
        "     AND t.attempt = j.attempt AND t.to_state = 'DONE') AS done_at "
        "FROM jobs j WHERE j.state = 'DONE' AND j.backend = ? AND j.shots_expected > 0 "
        "ORDER BY j.updated_at DESC LIMIT ?",
        (backend, window),
    ).fetchall()
    points = [(float(n), float(d - r)) for n, r, d in rows if r is not None and d is not None]
    if not points:
        return None
    count = len(points)
    mean_n = sum(n for n, _ in points) / count
    mean_t = sum(t for _, t in points) / count
    spread = sum((n - mean_n) ** 2 for n, _ in points)
    if spread > 0:
        slope = sum((n - mean_n) * (t - mean_t) for n, t in points) / spread
        overhead = mean_t - slope * mean_n
        if slope > 0 and overhead >= 0:
            return DurationModel(overhead, slope, count)
    return DurationModel(0.0, statistics.median(t / n for n, t in points), count)


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
    planned = started + model.duration_s(shots)
    remaining = max(shots - job.shots_done, 0)
    # Running late: at least the remaining shots at the measured rate are still to come.
    return max(planned, now + remaining * model.per_shot_s)
