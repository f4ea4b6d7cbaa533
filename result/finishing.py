"""A running job's end: complete (CSVs, result JSON, ``DONE``), given-up shots, or silence.

Every running job is checked after each pass of the result daemon: complete (every expected
shot archived or given up) means its CSVs, the multi-shot routines' files
(:mod:`result.multishot`) and the result JSON, then ``DONE``, or ``ERROR`` if shots were
given up; no new shot for ``result.shots_timeout_s`` (counted from the
machine's last shot of any job: a job engaged ahead waits behind the others' shots; and only
while the machine is operational, from when it was last back: :mod:`spooler.pipeline.monitor`) means
``ERROR`` with what is missing. The outputs are built from the ledger alone, in shot order,
so it does not matter in which order the shots were analysed, nor where. With them the job's
provenance (:mod:`result.provenance`) is made, written into the result's header and recorded
in the store for the status file; ``reprocess`` rewrites all of them through
:meth:`JobFinisher.write_outputs`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from result.archive import StoreUnavailable
from result.multishot import (
    Artefacts,
    MultishotInput,
    experiment_order,
    job_frame,
    load_multishot,
    run_multishot,
)
from result.outputs import experiment_frame, result_document, write_csv, write_result
from result.provenance import job_provenance
from spooler.core.backends import Backend
from spooler.core.errors import describe_exception
from spooler.core.fsutil import clear_stale_temps, read_regular_file
from spooler.core.jobs import Jobs
from spooler.core.logs import for_job
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobRecord
from spooler.core.store.provenance import Provenance
from spooler.core.store.shots import Ledger, ShotRow
from spooler.core.strictjson import loads_strict

__all__ = ["JobFinisher", "Outputs"]

log = logging.getLogger(__name__)


class Outputs(NamedTuple):
    result: Path  # the result JSON
    store: Path  # the job's store folder: shots, CSVs, the multi-shot routines' files
    shots: int  # archived
    artefacts: Artefacts


class JobFinisher:
    def __init__(
        self,
        settings: Settings,
        jobs: Jobs,
        backend: Backend,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.backend = backend
        # matplotlib (the shipped picture) keeps its caches in MPLCONFIGDIR, else in the home
        # folder, which a service may not write and a test must not: the tree's state folder
        os.environ.setdefault("MPLCONFIGDIR", str(settings.folders.state / "matplotlib"))
        self.wall_clock = wall_clock
        self.multishot = load_multishot(settings.result.multishot_routines)

    def check_all(self) -> None:
        for job in self.jobs.read.jobs(JobState.RUNNING):
            try:
                self.check(job)
            except StoreUnavailable:
                raise
            except Exception as exc:  # one job must not stop the others, nor the daemon
                for_job(log, job.job_id).exception("internal error while finishing the job")
                with self.jobs.change() as tx:
                    if tx.require(job.job_id).state is JobState.RUNNING:
                        tx.transition(
                            job.job_id,
                            JobState.ERROR,
                            note="Internal error while finishing the job",
                            error_message="internal error while finishing the job: "
                            + describe_exception(exc),
                        )

    def check(self, job: JobRecord) -> None:
        """Complete, timed out, or still waiting for shots."""
        experiments = self.jobs.read.experiments(job.job_id, job.attempt)
        if not experiments or any(e.engaged_at is None for e in experiments):
            return
        rows = Ledger.of_job(self.jobs.read, job.job_id, job.attempt)
        accounted: dict[str, int] = {}  # archived or given up
        for row in rows:
            if row.state in ("archived", "quarantined") and row.experiment:
                accounted[row.experiment] = accounted.get(row.experiment, 0) + 1
        missing = {
            e.name: (e.shots_expected or 0) - accounted.get(e.name, 0)
            for e in experiments
            if accounted.get(e.name, 0) < (e.shots_expected or 0)
        }
        if not missing:
            given_up = [r for r in rows if r.state == "quarantined"]
            if given_up:
                self._fail_quarantined(job, given_up)
            else:
                self._finish(job, rows)
            return
        last = Ledger.last_received_any(self.jobs.read)
        engaged = max(e.engaged_at or 0.0 for e in experiments)
        health = self.jobs.read.health()
        if health is not None and not health.operational:
            return  # the machine's fault, not the job's: it waits (spooler.pipeline.monitor)
        # only time the machine was operational counts (since it came back, if it was down)
        healthy_since = 0.0 if health is None else health.since
        quiet_s = self.wall_clock() - max(last or 0.0, engaged, healthy_since)
        if quiet_s > self.settings.result.shots_timeout_s:
            what = ", ".join(f"{n} of {name}" for name, n in missing.items())
            with self.jobs.change() as tx:
                tx.transition(
                    job.job_id,
                    JobState.ERROR,
                    note="Shots stopped arriving",
                    error_message=f"no shot arrived for {quiet_s:.0f} s; missing: {what}",
                )
            for_job(log, job.job_id).error("shots stopped arriving; missing %s", what)

    def _fail_quarantined(self, job: JobRecord, given_up: list[ShotRow]) -> None:
        """Every other shot is archived, but some were given up: the job ends ERROR."""
        first = given_up[0]
        shot = Path(first.local_path).name
        message = (
            f"{len(given_up)} shot(s) given up and kept in "
            f"{self.settings.folders.quarantine}; the first: {first.experiment} shot "
            f"{first.shot_index} ({shot}): {first.error}"
        )
        with self.jobs.change() as tx:
            tx.transition(
                job.job_id,
                JobState.ERROR,
                expect=JobState.RUNNING,
                note="Shots given up (see error_message); the others are archived",
                error_message=message,
            )
        for_job(log, job.job_id).error("%s", message)

    def _finish(self, job: JobRecord, rows: list[ShotRow]) -> None:
        result_path, store, count, artefacts = self.write_outputs(job, rows)
        failed = (
            f"; multi-shot routine(s) failed (see the result's header): "
            f"{', '.join(artefacts.failed)}"
            if artefacts.failed
            else ""
        )
        with self.jobs.change() as tx:
            tx.transition(
                job.job_id,
                JobState.DONE,
                expect=JobState.RUNNING,
                note=(
                    f"Done: {count} shot(s) analysed; result in {result_path}, "
                    f"shots and CSVs in {store}{failed}"
                ),
            )
        for_job(log, job.job_id).info("done: %d shot(s), result %s", count, result_path)

    def write_outputs(self, job: JobRecord, rows: list[ShotRow]) -> Outputs:
        """The CSV per experiment, the multi-shot routines' files and the result JSON (which
        names those files and holds the provenance, recorded in the store too), from the
        ledger's archived rows."""
        experiments = self.jobs.read.experiments(job.job_id, job.attempt)
        archived = [r for r in rows if r.state == "archived"]
        store = self.settings.folders.stored_job(job.job_id)
        clear_stale_temps(store)  # of a CSV or a routine's file whose writing a kill cut short
        frames: dict[str, Any] = {}
        memory: dict[str, list[str]] = {}
        for experiment in experiments:
            shots = [r for r in archived if r.experiment == experiment.name]
            shots.sort(key=lambda r: (r.shot_index if r.shot_index is not None else -1, r.address))
            frames[experiment.name] = experiment_frame(shots)
            memory[experiment.name] = [r.memory or "" for r in shots]
            write_csv(frames[experiment.name], store / f"{experiment.name}.csv")
        artefacts = self._run_multishot(job, store, frames, memory)
        header = artefacts.header() if self.multishot else {}
        try:
            provenance = job_provenance(
                job_id=job.job_id,
                backend=self.backend,
                archived=archived,
                frames=frames,
                multishot=self.multishot,
            )
        except Exception as exc:  # labspool's fault: the job's data is still written
            for_job(log, job.job_id).exception("the job's provenance could not be made")
            provenance = {"error": f"the provenance could not be made: {describe_exception(exc)}"}
        header["provenance"] = provenance
        result_path = self.settings.folders.results / f"{job.job_id}.json"
        write_result(
            result_document(self.backend, job.job_id, experiments, archived, header=header),
            result_path,
        )
        with self.jobs.change() as tx:
            Provenance.record(tx, job.job_id, job.attempt, provenance)
        return Outputs(result_path, store, len(archived), artefacts)

    def _job_experiments(self, job_id: str) -> dict[str, Any]:
        """The experiments of the accepted job file (name to its object: ``instructions``,
        ``shots``, ...), for the multi-shot routines; {} when it is gone (pruned) or cannot
        be read (logged: the routines then work without it)."""
        path = self.settings.folders.accepted_job(job_id)
        try:
            data = read_regular_file(path, self.settings.limits.job_file_max_bytes)
            document = loads_strict(data, max_depth=self.settings.limits.json_depth_max)
        except FileNotFoundError:
            return {}
        except Exception as exc:
            for_job(log, job_id).warning(
                "the job file %s cannot be read for the multi-shot routines: %s",
                path,
                describe_exception(exc),
            )
            return {}
        if not isinstance(document, dict):
            return {}
        return {k: v for k, v in document.items() if isinstance(k, str) and isinstance(v, dict)}

    def _run_multishot(
        self,
        job: JobRecord,
        store: Path,
        frames: dict[str, Any],
        memory: dict[str, list[str]],
    ) -> Artefacts:
        """The multi-shot routines' files; a failure of theirs loses none of the job's data."""
        if not self.multishot:
            return Artefacts()
        order = experiment_order(list(frames))
        try:
            ordered = {name: frames[name] for name in order}
            job_input = MultishotInput(
                job_id=job.job_id,
                backend=self.backend.name,
                # a reprocessed job keeps the time it was done first
                finished_at=self.jobs.read.entered(job.job_id, job.attempt, JobState.DONE)
                or self.wall_clock(),
                frames=ordered,
                frame=job_frame(ordered),
                memory={name: memory[name] for name in order},
                experiments=self._job_experiments(job.job_id),
            )
        except Exception as exc:  # not the routines' fault, and no reason to lose the job
            for_job(log, job.job_id).exception("the multi-shot routines' input failed")
            message = f"the job's frame could not be made: {describe_exception(exc)}"
            return Artefacts(failed={routine.spec: message for routine in self.multishot})
        taken = set(frames) | {f"{name}.csv" for name in frames}
        if store.is_dir():  # attempt-2/ and the like
            taken |= {entry.name for entry in store.iterdir() if entry.is_dir()}
        return run_multishot(self.multishot, job_input, store, reserved=taken)
