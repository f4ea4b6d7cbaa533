"""Progress and time estimates, from what this machine measured.

The model, per backend, from the most recent finished jobs of that backend in the job store
(which records when each job started running, when its first and last shot were made, and
when it was done):

- ``lead_s``: from RUNNING to the first shot, for a job engaged on a machine that had no
  other shot to make (compiling, the first shot). The first job this store ever saw make a
  shot started a cold lab (runmanager's first compile imports labscript; BLACS programs its
  devices for the first time), seconds slower than any later idle start: it counts only when
  there is nothing else. With the look-ahead, idle starts are rare; without a warm one, the
  lead is ``gap_s`` plus half of BLACS's poll of its empty queue (once a second:
  ``IDLE_POLL_S``), which is what a warm idle start adds to a shot's cycle;
- ``gap_s``: from the last shot of the job before to the first shot of this one, for a job
  engaged ahead while that one's shots still ran (pipelining, :mod:`spooler.pipeline.dispatch`);
- ``per_shot_s``: from one shot made to the next, within a job;
- ``tail_s``: from the last shot made to DONE (analysis of the last shot, archiving, the
  multi-shot analysis, the result file).

Each is the median over the jobs (so that one slow job, such as the first after a start,
does not drag every estimate). No finished job yet: no estimate (``None``), rather than a
guess. No job engaged ahead among them (the look-ahead is off): a job follows the one before
it after that one's tail and its own lead.

The machine makes the shots of one job after another, in the order they were engaged and
then in queue order. A job is walked in that order: its first shot comes ``gap_s`` after the
last shot of the job before (``lead_s`` after now on a machine with nothing to make), its
last ``per_shot_s`` apart, and it is done ``tail_s`` after that; a running job that has made
shots goes on at its own measured rate (weighed against the model's as if the model were
``PRIOR_INTERVALS`` intervals of it). A queued job's estimated start is its first shot. A
paused spooler starts nothing: the queued jobs then have no estimated start.

On one backend's model, each queued job ahead moves a job's first shot by ``after_s`` and
by its own shots' intervals (the first job's first shot is at least ``lead_s`` away, so
the machine never falls idle further down the queue): :func:`estimate_shown` estimates a
page's jobs from sums the store counts (:meth:`spooler.core.store.Reader.queue_places`), the
same figures as walking the queue, without reading the jobs ahead.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from spooler.core.pause import read_pause
from spooler.core.states import FINISHED, JobState
from spooler.core.store import JobRecord, QueuePlace, Reader
from spooler.core.store.reports import Reports

__all__ = [
    "DurationModel",
    "Estimate",
    "duration_model",
    "estimate_finished",
    "estimate_jobs",
    "estimate_shown",
]

WINDOW_JOBS = 10  # recent jobs: the machine of the last hour, not of last week
PRIOR_INTERVALS = 10  # how much the model weighs against a running job's own shot rate
IDLE_POLL_S = 1.0  # BLACS looks at its empty queue once a second (experiment_queue.manage)


@dataclass(frozen=True, slots=True)
class DurationModel:
    lead_s: float
    per_shot_s: float
    tail_s: float
    samples: int
    gap_s: float | None = None  # None: no job was engaged ahead (see the module's text)

    def duration_s(self, shots: int) -> float:
        """A job of *shots* shots on a machine with nothing else to do."""
        return self.lead_s + self.per_shot_s * max(shots - 1, 0) + self.tail_s

    def after_s(self) -> float:
        """From the last shot of the job before to the first of the next one."""
        return self.gap_s if self.gap_s is not None else self.tail_s + self.lead_s


@dataclass(frozen=True, slots=True)
class Estimate:
    elapsed_s: float | None = None
    start: float | None = None
    finish: float | None = None


def duration_model(reader: Reader, backend: str, window: int = WINDOW_JOBS) -> DurationModel | None:
    """The medians over the last *window* DONE jobs of *backend* (None when there is none)."""
    jobs = [
        (r.shots_made, r.first_shot_at, r.last_shot_at, r.running_at, r.done_at, r.previous_shot_at)
        for r in Reports.finished_runs(reader, backend, window)
        if r.running_at is not None and r.done_at is not None
    ]  # (the runs of an attempt that went RUNNING and DONE)
    if not jobs:
        return None
    # engaged ahead: running before the job before it made its last shot
    gaps = [first - b for _, first, _, running, _, b in jobs if b is not None and running < b]
    # idle starts: warm ones had a shot of any job before them on this machine
    idle = [
        (first - running, b is None)
        for _, first, _, running, _, b in jobs
        if b is None or running >= b
    ]
    warm = [lead for lead, cold_lab in idle if not cold_lab]
    cold = [lead for lead, cold_lab in idle if cold_lab]
    tail = statistics.median(done - last for _, _, last, _, done, _ in jobs)
    rates = [(last - first) / (n - 1) for n, first, last, _, _, _ in jobs if n > 1]
    gap = statistics.median(gaps) if gaps else None
    if warm:
        lead = statistics.median(warm)
    elif gap is not None:
        lead = gap + IDLE_POLL_S / 2
    else:
        lead = statistics.median(cold) if cold else 0.0
    # only one-shot jobs: the first shot's whole time is all that was measured of a shot
    per_shot = statistics.median(rates) if rates else lead
    return DurationModel(
        max(lead, 0.0),
        max(per_shot, 0.0),
        max(tail, 0.0),
        len(jobs),
        None if gap is None else max(gap, 0.0),
    )


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
    model = _models(reader)
    result, machine = _running(reader, now, model)
    if job_ids is not None:
        for job_id in job_ids - result.keys():
            ended = reader.get(job_id)
            if ended is not None and ended.state in FINISHED:
                estimate = _finished(reader, ended)
                if estimate is not None:
                    result[job_id] = estimate
    pause = read_pause(reader)
    walking = pause is None or not pause.active(now)
    if job_ids is None:
        ahead = reader.queue()
    else:
        if positions is None:
            positions = reader.queue_positions(job_ids)
        depth = max(positions.values(), default=0)
        ahead = reader.queue(limit=depth) if depth else []
    for job in ahead:
        m = model(job.backend)
        if not walking or m is None or job.shots_requested is None:
            walking = False
            result[job.job_id] = Estimate()
            continue
        first = _first_shot(now, machine, m)
        machine = first + m.per_shot_s * max(job.shots_requested - 1, 0)
        result[job.job_id] = Estimate(None, first, machine + m.tail_s)
    return result


def estimate_shown(
    reader: Reader, now: float, records: Iterable[JobRecord], places: Mapping[str, QueuePlace]
) -> dict[str, Estimate]:
    """The estimates of *records* alone (a page's jobs, of any state), each as
    :func:`estimate_jobs` makes it, the queued ones from their *places*
    (``reader.queue_places``) instead of a walk of the queue ahead of them: what is read
    grows with *records* and the running jobs, not with the queue. (Jobs of several
    backends ahead of one: the queue ahead of it is walked, as :func:`estimate_jobs` does.)"""
    shown = {r.job_id: r for r in records}
    model = _models(reader)
    result = estimate_finished(reader, shown.values())
    if not any(r.state in (JobState.RUNNING, JobState.QUEUED) for r in shown.values()):
        return result  # nothing waits or runs: neither the machine nor the queue matter
    running, machine = _running(reader, now, model)
    result.update((job_id, e) for job_id, e in running.items() if job_id in shown)
    queued = sorted(
        (
            (places[r.job_id], r)
            for r in shown.values()
            if r.state is JobState.QUEUED and r.job_id in places
        ),
        key=lambda pair: pair[0].position,
    )
    if not all(place.one_backend for place, _ in queued):
        positions = {job.job_id: place.position for place, job in queued}
        walked = estimate_jobs(reader, now, set(positions), positions)
        result.update((job_id, walked.get(job_id, Estimate())) for job_id in positions)
        return result
    pause = read_pause(reader)
    walking = pause is None or not pause.active(now)
    for place, job in queued:
        m = model(job.backend)
        if not walking or m is None or job.shots_requested is None or place.unsized_ahead:
            result[job.job_id] = Estimate()  # a job ahead of unknown size: no estimate
            continue
        first = (
            _first_shot(now, machine, m)
            + m.after_s() * (place.position - 1)
            + m.per_shot_s * place.intervals_ahead
        )
        last = first + m.per_shot_s * max(job.shots_requested - 1, 0)
        result[job.job_id] = Estimate(None, first, last + m.tail_s)
    return result


def estimate_finished(reader: Reader, records: Iterable[JobRecord]) -> dict[str, Estimate]:
    """The elapsed time, start and end of the finished jobs among *records* that ran (those
    that never ran are left out), when each went RUNNING read for all of them at once."""
    ended = [r for r in records if r.state in FINISHED]
    started = reader.entered_each(((r.job_id, r.attempt) for r in ended), JobState.RUNNING)
    return {
        r.job_id: Estimate(r.updated_at - started[r.job_id], started[r.job_id], r.updated_at)
        for r in ended
        if r.job_id in started
    }


def _models(reader: Reader) -> Callable[[str], DurationModel | None]:
    """Each backend's model, computed once per call of an estimate."""
    models: dict[str, DurationModel | None] = {}

    def model(backend: str) -> DurationModel | None:
        if backend not in models:
            models[backend] = duration_model(reader, backend)
        return models[backend]

    return model


def _running(
    reader: Reader, now: float, model: Callable[[str], DurationModel | None]
) -> tuple[dict[str, Estimate], float | None]:
    """The running jobs' estimates, and when the machine will have made the shots of all of
    them (None: it has nothing to make; unknown counts as nothing, the jobs behind then go
    by their lead)."""
    result: dict[str, Estimate] = {}
    machine: float | None = None
    for job in reader.running():
        started = reader.entered(job.job_id, job.attempt, JobState.RUNNING)
        m = model(job.backend)
        last = _running_last_shot(job, started, now, machine, m)
        if last is not None and job.making_shots:
            machine = last if machine is None else max(machine, last)
        finish = None if last is None or m is None else max(last + m.tail_s, now)
        result[job.job_id] = Estimate(None if started is None else now - started, started, finish)
    return result, machine


def _finished(reader: Reader, ended: JobRecord) -> Estimate | None:
    """A finished job's elapsed time (None: it never ran)."""
    started = reader.entered(ended.job_id, ended.attempt, JobState.RUNNING)
    if started is None:
        return None
    return Estimate(ended.updated_at - started, started, ended.updated_at)


def _first_shot(engaged: float, machine: float | None, model: DurationModel) -> float:
    """When a job engaged at *engaged* makes its first shot, behind shots ahead until
    *machine*."""
    if machine is None or machine + model.after_s() <= engaged + model.lead_s:
        return engaged + model.lead_s
    return machine + model.after_s()


def _running_last_shot(
    job: JobRecord,
    started: float | None,
    now: float,
    machine: float | None,
    model: DurationModel | None,
) -> float | None:
    """When a running job makes its last shot (None: no model, or its size is unknown)."""
    # shots_expected grows as the experiments are submitted one by one; until the last is,
    # the job's own request says better how many shots there will be.
    shots = max(job.shots_expected or 0, job.shots_requested or 0)
    if started is None or model is None or not shots:
        return None
    left = max(shots - job.shots_made, 0)
    if job.shots_made == 0 or job.first_shot_at is None or job.last_shot_at is None:
        # Not a shot yet: behind the shots ahead; running late, the first is at least due now.
        first = max(_first_shot(started, machine, model), now)
        return first + model.per_shot_s * max(left - 1, 0)
    intervals = job.shots_made - 1
    own = (job.last_shot_at - job.first_shot_at) / intervals if intervals else model.per_shot_s
    rate = (intervals * own + PRIOR_INTERVALS * model.per_shot_s) / (intervals + PRIOR_INTERVALS)
    if not left:
        return job.last_shot_at
    # Running late (no shot for longer than the rate says): the next shot is due now.
    return max(job.last_shot_at + rate * left, now + rate * max(left - 1, 0))
