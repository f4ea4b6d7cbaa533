"""A tree after months of work, for the tests of ``labspool prune``: jobs that ended long ago
and lately, jobs still at work (one of them requeued after an old ERROR), each with the files
the daemons leave (status, result, rendered folder, processed address files with their
ledger rows, rejected files, quarantined items), aged by an injected clock and ``os.utime``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spooler.core.jobs import Jobs
from spooler.core.settings import Settings, load_settings
from spooler.core.states import JobState
from spooler.core.store import Transaction
from spooler.core.store.shots import Ledger
from tests.fakes import Clock

NOW = 1.8e9  # the prune's time
DAY = 86400.0
OLD = NOW - 100 * DAY  # beyond every retention of the tests (30 days)
LATE = NOW - 1 * DAY  # within it

_ = JobState
# job -> (the states it goes through and when, in order)
JOURNEYS: dict[str, list[tuple[JobState, float]]] = {
    "old_done": [(_.QUEUED, OLD), (_.RUNNING, OLD), (_.DONE, OLD)],
    "old_error": [(_.QUEUED, OLD), (_.RUNNING, OLD), (_.ERROR, OLD)],
    "old_rejected": [(_.ERROR, OLD)],
    "old_cancelled": [(_.QUEUED, OLD), (_.RUNNING, OLD), (_.CANCELLED, OLD)],
    "requeued": [(_.QUEUED, OLD), (_.RUNNING, OLD), (_.ERROR, OLD), (_.QUEUED, LATE)],
    "running_old": [(_.QUEUED, OLD), (_.RUNNING, OLD)],
    "new_done": [(_.QUEUED, LATE), (_.RUNNING, LATE), (_.DONE, LATE)],
}
STATES = {job: journey[-1][0] for job, journey in JOURNEYS.items()}


@dataclass
class AgedTree:
    settings: Settings
    removed: set[Path] = field(default_factory=set)  # what a prune of 30 days removes
    kept: set[Path] = field(default_factory=set)  # the files it must keep


def with_retention(settings: Settings, **days: float | None) -> Settings:
    """The tree's configuration with these keys of its ``retention`` section."""
    raw = yaml.safe_load(settings.path.read_text(encoding="utf-8"))
    raw.setdefault("retention", {}).update(days)
    settings.path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_settings(settings.path)


def every_kind(settings: Settings, days: float | None = 30) -> Settings:
    return with_retention(
        settings,
        processed_addresses_days=days,
        finished_status_files_days=days,
        rendered_jobs_days=days,
        rejected_job_files_days=days,
        quarantine_days=days,
    )


def build(settings: Settings) -> AgedTree:
    """Every job of :data:`JOURNEYS` with its files; which of them a prune of 30 days for
    every kind removes and which it keeps."""
    tree = AgedTree(settings)
    folders = settings.folders
    clock = Clock()
    jobs = Jobs(folders, clock=clock)
    try:
        for job_id, journey in JOURNEYS.items():
            clock.now = journey[0][1]
            with jobs.change() as tx:
                tx.add_job(job_id=job_id, backend=settings.backend, source_name="x", claim_name="x")
                tx.add_experiment(job_id, 1, "experiment_0", 3)
            for state, at in journey:
                clock.now = at
                with jobs.change() as tx:
                    message = "lost" if state is JobState.ERROR else None
                    tx.transition(job_id, state, error_message=message)
        clock.now = LATE
        with jobs.change() as tx:
            _shots(tx, tree, "old_done", 1, ["", ".missing", ".1"], removed=True)
            _shots(tx, tree, "old_error", 1, [""], removed=True)
            _shots(tx, tree, "old_cancelled", 1, [""], removed=True)
            _shots(tx, tree, "requeued", 1, [""], removed=False)  # its job is at work again
            _shots(tx, tree, "requeued", 2, [""], removed=False)
            _shots(tx, tree, "running_old", 1, [""], removed=False)
            _shots(tx, tree, "new_done", 1, [""], removed=False)
    finally:
        jobs.close()
    for job_id, state in STATES.items():
        old = JOURNEYS[job_id][-1][1] == OLD
        ended = state in (JobState.DONE, JobState.ERROR, JobState.CANCELLED)
        status = folders.status / f"{job_id}.json"
        assert status.is_file()
        (tree.removed if old and ended else tree.kept).add(status)
        if job_id != "old_rejected":  # accepted: its job file and rendered experiment
            for name in ("job.json", "experiment_0.py"):
                _file(folders.jobs / job_id / name, "{}", tree, removed=old and state is _.DONE)
        if state is JobState.DONE:
            result = {"backend_name": settings.backend, "job_id": job_id, "results": []}
            _file(folders.results / f"{job_id}.json", json.dumps(result), tree, removed=False)
    _file(folders.rejected / "old_rejected.json", "{", tree, removed=True)
    _file(folders.rejected / "old_rejected.1.json", "[", tree, removed=True)
    _file(folders.rejected / "stray.json", "{", tree, removed=False)  # of no job: kept
    _quarantined(tree, "old_done__experiment_0__00003.json", "old_done", OLD, removed=True)
    _quarantined(tree, "requeued__experiment_0__00009.json", "requeued", OLD, removed=False)
    _quarantined(tree, "new_done__experiment_0__00009.json", "new_done", OLD, removed=False)
    _quarantined(tree, "stray.json", None, OLD, removed=True)  # of no job, long ago
    _quarantined(tree, "ghost__experiment_0__00000.json", "ghost", OLD, removed=True)
    _quarantined(tree, "stray_lately.json", None, LATE, removed=False)
    _quarantined(tree, "late_of_old.json", "old_done", LATE, removed=False)  # late shot
    return tree


def files_under(root: Path) -> dict[Path, tuple[int, bytes]]:
    """Every file under *root* with its time and content (the job store's own and the
    processes' lock files excepted)."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "sqlite3" not in path.name and path.suffix != ".lock":
            found[path] = (path.stat().st_mtime_ns, path.read_bytes())
    return found


def _shots(
    tx: Transaction,
    tree: AgedTree,
    job_id: str,
    attempt: int,
    suffixes: list[str],
    *,
    removed: bool,
) -> None:
    """One archived shot per suffix, its ledger row and its address file in processed/
    (the suffixes the result daemon's filing adds: a shot that was gone, a free name)."""
    for index, suffix in enumerate(suffixes):
        address = f"{job_id}__experiment_0__{index:05d}.json"
        if attempt > 1:  # the result daemon's name for an address name the ledger has seen
            address = f"{job_id}__experiment_0__{index:05d}.{attempt - 1}.json"
        Ledger.claim(
            tx,
            address,
            job_id=job_id,
            attempt=attempt,
            experiment="experiment_0",
            shot_index=index,
            local_path=f"/shots/{job_id}/experiment_0/{index}.h5",
        )
        stored = tree.settings.folders.stored_shot(job_id, "experiment_0", f"{index}.h5")
        Ledger.archived(
            tx,
            address,
            sds_path=str(stored),
            size=1,
            sha256="0" * 64,
            frame=b"",
            memory="1",
            error=None,
            routines="old@000000000000",
        )
        _file(stored, "h5", tree, removed=False)
        content = {"job_id": job_id, "attempt": attempt, "shot": f"/shots/{index}.h5"}
        path = tree.settings.folders.processed / (address + suffix)
        _file(path, json.dumps(content), tree, removed=removed)


def _quarantined(
    tree: AgedTree, name: str, job_id: str | None, at: float, *, removed: bool
) -> None:
    """An item given up at *at*, with a companion and its reason file."""
    folder = tree.settings.folders.quarantine
    item, companion = folder / name, folder / f"{name}--shot.h5"
    document: dict[str, Any] = {
        "item": name,
        "reason": "damaged",
        "job_id": job_id,
        "moved": {f"/addresses/{name}": item.name, f"/shots/{name}.h5": companion.name},
    }
    for path, text in (
        (item, "{}"),
        (companion, "h5"),
        (folder / f"{name}.reason.json", json.dumps(document)),
    ):
        _file(path, text, tree, removed=removed)
        os.utime(path, (at, at))


def _file(path: Path, text: str, tree: AgedTree, *, removed: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    (tree.removed if removed else tree.kept).add(path)
