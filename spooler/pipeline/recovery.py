"""Recovery of lost shots: an engaged experiment whose shots the machine no longer holds.

BLACS killed comes back with an empty queue; runmanager killed while compiling sends no more
of the experiment; a shot folder that was full or read-only made runmanager's compilation
fail. In each case an engaged experiment has shots still to make that nobody will make.
With the machine operational (:mod:`spooler.pipeline.monitor`), an experiment is *stalled* when

- shots of it are missing: indices of ``range(shots)`` that the result daemon has not
  received (its ledger) and for which no address file waits;
- BLACS holds none of its shots (none in its queue's folders, none running);
- nothing happened for ``lab.stalled_after_s``: no shot file written in its shot folder, no
  shot of its job made, and it was not engaged more recently than that;
- no experiment engaged before it is still at work: runmanager compiles and BLACS runs in the
  order engaged, so an experiment behind a long compile or a long queue waits, and is not
  lost (lost shots are made again once the machine has gone quiet).

Then the missing shots, and only those, are made again: the experiment's shot folders so far
are first withdrawn (BLACS's plugin takes out and refuses any shot that still arrives in
them, so a late shot of the lost round can never run beside its replacement), then its
globals are set with the shot global as the list of missing indices, the shots go to a new
folder ``<shot folder>/recovery-<n>``, and it is engaged. Each round is recorded
(``experiments.recoveries``) before it is engaged, so a crash in between only leads to a
further round; after :data:`RECOVERIES_MAX` rounds the experiment is left to the shots'
time-out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from spooler.core.fsutil import json_objects
from spooler.core.jobs import Jobs
from spooler.core.logs import for_job
from spooler.core.model import Job
from spooler.core.settings import Settings
from spooler.core.store import ExperimentRecord, JobRecord
from spooler.lab import Lab

__all__ = ["RECOVERIES_MAX", "ShotRecovery"]

log = logging.getLogger(__name__)

RECOVERIES_MAX = 5


class ShotRecovery:
    def __init__(
        self,
        settings: Settings,
        jobs: Jobs,
        lab: Lab,
        load_job: Callable[[JobRecord], Job],
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.lab = lab
        self.load_job = load_job

    def step(self, queued_folders: dict[str, int], running: str | None) -> int:
        """Make the lost shots of every stalled experiment again; returns the rounds engaged.

        *queued_folders*, *running*: BLACS's queue as its plugin just reported it."""
        held = set(queued_folders)
        if running is not None:
            held.add(str(Path(running).parent))
        engaged: list[tuple[JobRecord, ExperimentRecord]] = []
        for job in self.jobs.read.running():
            if job.lab_action is not None:
                continue  # being withdrawn
            experiments = self.jobs.read.experiments(job.job_id, job.attempt)
            if not experiments or any(e.engaged_at is None for e in experiments):
                continue  # still being engaged (the dispatcher resumes it)
            engaged.extend((job, e) for e in experiments)
        # runmanager compiles and BLACS runs in the order engaged: an experiment waits behind
        # one engaged before it that is still at work (a long compile of the experiments
        # before it is no loss), so the first one at work ends the look
        engaged.sort(key=lambda pair: pair[1].engaged_at or 0.0)
        rounds = 0
        for job, experiment in engaged:
            missing = self._lost(job, experiment, held)
            if missing is None:
                break
            if missing:
                self._make_again(job, experiment, missing)
                rounds += 1
        return rounds

    def _lost(
        self, job: JobRecord, experiment: ExperimentRecord, held: set[str]
    ) -> list[int] | None:
        """The missing shots of a stalled experiment; empty: none missing (or not ours to
        make again); None: it is still at work (BLACS holds some of its shots, or shots,
        files or its engagement are more recent than ``lab.stalled_after_s``)."""
        expected = experiment.shots_expected or 0
        folders = self.settings.folders.shot_folders(
            job.job_id, job.attempt, experiment.name, experiment.recoveries
        )
        if any(str(f) in held for f in folders):
            return None
        made = self.jobs.read.shot_indices_received(job.job_id, job.attempt, experiment.name)
        if len(made) >= expected:
            return []
        made |= self._announced(job, experiment.name)
        missing = [i for i in range(expected) if i not in made]
        if not missing:
            return []
        last = max(
            experiment.engaged_at or 0.0,
            job.last_shot_at or 0.0,
            _newest_file(folders[-1]),
        )
        if self.jobs.store.clock() - last < self.settings.lab.stalled_after_s:
            return None
        if expected != experiment.shots_requested or experiment.recoveries >= RECOVERIES_MAX:
            return []  # runmanager makes other shots than range(shots): not ours to redo
        return missing

    def _announced(self, job: JobRecord, experiment: str) -> set[int]:
        """Shots whose address files wait for the result daemon (not in its ledger yet)."""
        folders = self.settings.folders
        found: set[int] = set()
        pattern = f"{job.job_id}__{experiment}__*"
        for place in (folders.addresses, folders.result_claimed):
            for address in json_objects(place, pattern):  # untrusted files
                index = address.get("shot_index")
                if (
                    address.get("job_id") == job.job_id
                    and address.get("attempt", 1) == job.attempt
                    and isinstance(index, int)
                ):
                    found.add(index)
        return found

    def _make_again(self, job: JobRecord, experiment: ExperimentRecord, missing: list[int]) -> None:
        jlog = for_job(log, job.job_id)
        folders = self.settings.folders
        old = folders.shot_folders(job.job_id, job.attempt, experiment.name, experiment.recoveries)
        # never two rounds of one shot: what is left of the lost round is refused from now on
        self.lab.withdraw(old, abort=False)
        with self.jobs.change() as tx:
            current = tx.require(job.job_id)
            if current.attempt != job.attempt or current.state is not job.state:
                return
            n = tx.experiment_recovered(job.job_id, job.attempt, experiment.name)
            shown = _indices(missing)
            tx.note(
                job.job_id,
                f"Recovery: the machine lost {len(missing)} shot(s) of {experiment.name} "
                f"({shown}: none in BLACS's queue, none made for "
                f"{self.settings.lab.stalled_after_s:g} s): making them again (round {n})",
            )
        jlog.warning("recovery %d of %s: making shots %s again", n, experiment.name, shown)
        spec = next(e for e in self.load_job(job).experiments if e.name == experiment.name)
        output = folders.shot_folder(job.job_id, job.attempt, experiment.name, n)
        output.mkdir(parents=True, exist_ok=True)
        values: dict[str, object] = {
            "job_id": job.job_id,
            "experiment_name": experiment.name,
            "shots": experiment.shots_requested,
            "attempt": job.attempt,
            "shot_indices": missing,
        }
        if spec.seed is not None:
            values["seed"] = spec.seed
        self.lab.set_globals(values)
        self.lab.set_labscript_file(folders.jobs / job.job_id / f"{experiment.name}.py")
        self.lab.set_shot_output_folder(output)
        shots = self.lab.n_shots()
        if shots != len(missing):
            jlog.warning("recovery: runmanager makes %d shots, %d are missing", shots, len(missing))
        self.lab.engage()
        with self.jobs.change() as tx:
            tx.experiment_engaged(job.job_id, job.attempt, experiment.name)  # the quiet's start
            tx.note(job.job_id, f"Engaged {experiment.name} again: {shots} shot(s) to {output}")
        jlog.info("engaged %s again: %d shot(s) to %s", experiment.name, shots, output)


def _newest_file(folder: Path) -> float:
    """The latest modification time of the files in *folder* (0 when none)."""
    newest = 0.0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
                except OSError:
                    continue
    except OSError:
        return 0.0
    return newest


def _indices(indices: list[int]) -> str:
    shown = ", ".join(map(str, indices[:10]))
    return f"shots {shown}" + (f" and {len(indices) - 10} more" if len(indices) > 10 else "")
