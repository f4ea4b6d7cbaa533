"""Retention: which files of ended jobs ``labspool prune`` removes, and removing them safely.

What grows with every job and every shot is pruned kind by kind, each after its setting in
the ``retention`` section (:class:`~spooler.core.configsections.RetentionSettings`), in days
counted from when the job ended (its last transition into DONE, ERROR or CANCELLED):

- ``processed/``: the address files of shots, each by the job and attempt its ledger row
  names (the ledger keeps everything an address file said);
- ``status/``: status files (``labspool status`` renders the same document from the store,
  and the gateway answers from the store's record when the file is missing);
- ``jobs/<job_id>/``: the accepted job file and rendered experiments of DONE jobs only (an
  ERROR or CANCELLED job may be requeued, which runs it from there);
- ``rejected/``: refused job files;
- ``quarantine/``: given-up items with their reason files, of ended jobs (or of no job: an
  address file naming no job; counted from when the item was quarantined as well).

Never touched: the job store's rows (every job, its history, and the ledger that
``labspool-result reprocess`` reads), ``results/`` (what users fetch), ``sds/`` (the archived
shots and CSVs), and any file of a job that has not ended.

Why this is safe while the daemons run. A file goes only once its job has ended, and:

- an address file only when the attempt its ledger row names is the job's ended attempt or
  an earlier one: a requeued job's new attempt files its address files under names of its
  own, in rows with a higher attempt, which are kept;
- status files in batches under the status folder's lock, each job's state read again
  inside it: a requeue committed before is seen (the file is kept), and one committed after
  renders its file once the lock is released (the renderer's rule: the last writer writes
  the newest state);
- a rendered job folder only for DONE, from which no transition leads;
- a quarantined item before its reason file, so that a prune cut short leaves a reason file
  naming what is gone, which the next prune removes (the daemons move items in under free
  names and write the reason file last: an item whose reason file exists is complete).

Each folder is synced after its removals, so that they survive a power cut. Then the store's
own upkeep (:mod:`spooler.core.store.upkeep`): statistics, a checkpoint of the write-ahead
log, and a VACUUM only when asked, with neither daemon running. A dry run decides the same
and changes nothing, the store included.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from spooler.core.errors import LabspoolError, SpoolerBusy
from spooler.core.fsutil import (
    clear_stale_temps,
    exclusive_lock,
    fsync_dir,
    is_ignored_name,
    read_regular_file,
)
from spooler.core.items import REASON_SUFFIX
from spooler.core.prunereport import PruneReport, StoreUpkeep, Swept
from spooler.core.settings import Settings
from spooler.core.states import FINISHED, JobState
from spooler.core.statusfile import StatusFiles
from spooler.core.store import JobStore
from spooler.core.store import upkeep as store_upkeep
from spooler.core.store.housekeeping import EndedJob, Housekeeping

__all__ = ["DAEMON_LOCKS", "DAY_S", "PruneReport", "Pruner", "StoreUpkeep", "Swept"]

DAY_S = 86400.0
# The locks of the processes that write the store all along (in the state folder): held by
# prune --vacuum, so that none runs during the rewrite (spooler.pipeline.daemon.Spooler.lock,
# result.daemon.ResultDaemon.lock, result.reprocess's lock)
DAEMON_LOCKS = {
    "spooler.lock": "spooler",
    "result.lock": "result daemon",
    "reprocess.lock": "reprocess",
}
_REASON_MAX_BYTES = 1 << 20
_GONE = -1  # Pruner._unlink: the file was gone already
_FREE_NAME = re.compile(r"(.+)\.[1-9][0-9]*")  # fsutil.free_name's "<name>.<n>"
_ADDRESS_BATCH = 5000  # address files looked up in the ledger at a time
_STATUS_BATCH = 200  # status files removed per hold of the status folder's lock


class Pruner:
    """``labspool prune`` on the tree of *settings*, at *now* (a Unix time)."""

    def __init__(
        self, settings: Settings, *, now: float | None = None, dry_run: bool = False
    ) -> None:
        self.settings = settings
        self.folders = settings.folders
        self.now = time.time() if now is None else now
        self.dry_run = dry_run
        self._store: JobStore | None = None
        self._ended_by_now: dict[str, EndedJob] | None = None  # read once per run

    @property
    def store(self) -> JobStore:
        assert self._store is not None, "only while run() runs"
        return self._store

    def run(self, *, vacuum: bool = False) -> PruneReport:
        """Prune every kind whose setting is not null, then keep the store (unless a dry
        run); *vacuum*: VACUUM it too, which is refused while a daemon runs."""
        report = PruneReport(at=self.now, dry_run=self.dry_run)
        if not self.folders.database.exists():  # no job was ever recorded: nothing ended
            report.kinds = [Swept(kind, days, unit) for kind, days, unit, _ in self._kinds()]
            return report
        locks: list[int] = []
        try:
            if not self.dry_run:
                locks.append(exclusive_lock(self.folders.state / "prune.lock", "prune"))
                if vacuum:
                    locks += _daemons_stopped(self.folders.state)
            self._store = JobStore(self.folders.database)
            try:
                for kind, days, unit, sweep in self._kinds():
                    swept = Swept(kind, days, unit)
                    if days is not None:
                        swept.before = self.now - days * DAY_S
                        sweep(swept, swept.before)
                    report.kinds.append(swept)
                if not self.dry_run:
                    report.stale_temps_removed = self._clear_stale_temps()
                    report.store = self._upkeep(vacuum)
            finally:
                self._store.close()
                self._store = None
        finally:
            for fd in locks:
                os.close(fd)
        return report

    def _clear_stale_temps(self) -> int:
        """Temporary files that killed processes left in ``status/``, ``results/`` and
        ``quarantine/`` (whatever their age: a file whose writer is gone is never finished);
        a daemon's start clears them only after its own unclean stop
        (:meth:`spooler.core.watching.WatchingDaemon._clear_stale_temps`)."""
        folders = self.folders
        return sum(
            clear_stale_temps(folder)
            for folder in (folders.status, folders.results, folders.quarantine)
        )

    def _kinds(self) -> list[tuple[str, float | None, str, Callable[[Swept, float], None]]]:
        r = self.settings.retention
        return [
            ("processed_addresses", r.processed_addresses_days, "file", self._processed),
            ("finished_status_files", r.finished_status_files_days, "file", self._status),
            ("rendered_jobs", r.rendered_jobs_days, "folder", self._rendered_jobs),
            ("rejected_job_files", r.rejected_job_files_days, "file", self._rejected),
            ("quarantine", r.quarantine_days, "item", self._quarantine),
        ]

    # -- the kinds ----------------------------------------------------------------------------

    def _processed(self, swept: Swept, cutoff: float) -> None:
        """Address files of shots of ended attempts of jobs ended by *cutoff*."""
        folder = self.folders.processed
        ended = self._ended(cutoff)
        names: list[str] = []
        for entry in _entries(folder):
            if entry.is_file(follow_symlinks=False):
                names.append(entry.name)
            if len(names) >= _ADDRESS_BATCH:
                self._processed_batch(folder, names, ended, swept)
                names = []
        self._processed_batch(folder, names, ended, swept)
        self._sync(folder, swept)

    def _processed_batch(
        self, folder: Path, names: list[str], ended: dict[str, EndedJob], swept: Swept
    ) -> None:
        if not names or not ended:
            return
        candidates = {name: _address_names(name) for name in names}
        with self.store.snapshot() as view:
            owners = Housekeeping.shot_owners(view, (n for c in candidates.values() for n in c))
        for name, addresses in candidates.items():
            owner = next((owners[a] for a in addresses if a in owners), None)
            job = None if owner is None else ended.get(owner[0])
            if owner is not None and job is not None and owner[1] <= job.attempt:
                self._count(swept, self._unlink(folder / name, swept))

    def _status(self, swept: Swept, cutoff: float) -> None:
        """Status files of jobs ended by *cutoff*, in batches under the status folder's lock."""
        folder = self.folders.status
        names = [e.name for e in _entries(folder) if e.is_file(follow_symlinks=False)]
        ended = self._ended(cutoff)
        todo = [ended[n[:-5]] for n in names if n.endswith(".json") and n[:-5] in ended]
        files = StatusFiles(folder)
        for start in range(0, len(todo), _STATUS_BATCH):
            with contextlib.nullcontext() if self.dry_run else files.locked():
                for job in todo[start : start + _STATUS_BATCH]:
                    record = self.store.read.get(job.job_id)  # again, inside the lock
                    if record is None or record.state not in FINISHED:
                        continue
                    if record.attempt == job.attempt:
                        self._count(swept, self._unlink(files.path(job.job_id), swept))
                self._sync(folder, swept)

    def _rendered_jobs(self, swept: Swept, cutoff: float) -> None:
        """The folders ``jobs/<job_id>/`` of DONE jobs done by *cutoff*."""
        folder = self.folders.jobs
        names = [e.name for e in _entries(folder) if e.is_dir(follow_symlinks=False)]
        ended = self._ended(cutoff)
        for name in names:
            job = ended.get(name)
            if job is None or job.state is not JobState.DONE:
                continue
            path = folder / name
            size = _tree_bytes(path)
            if not self.dry_run:
                try:
                    shutil.rmtree(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    swept.errors.append(f"{path}: {exc.strerror or exc}")
                    continue
            swept.removed += 1
            swept.bytes += size
        self._sync(folder, swept)

    def _rejected(self, swept: Swept, cutoff: float) -> None:
        """Refused job files (``<job_id>.json``, ``<job_id>.<n>.json``) of jobs ended by
        *cutoff*."""
        folder = self.folders.rejected
        names = [e.name for e in _entries(folder) if e.is_file(follow_symlinks=False)]
        ended = self._ended(cutoff)
        for name in names:
            stem = name.removesuffix(".json")
            match = _FREE_NAME.fullmatch(stem)
            for job_id in (stem, match[1]) if match else (stem,):
                if job_id in ended:
                    self._count(swept, self._unlink(folder / name, swept))
                    break
                if self.store.read.get(job_id) is not None:
                    break  # the file of a job that has not ended, or not long enough

    def _quarantine(self, swept: Swept, cutoff: float) -> None:
        """Items quarantined by *cutoff*, of jobs ended by then or of no job, each with its
        companions and, last, its reason file. A reason file that cannot be read, or whose
        item is a folder, is left to a person."""
        folder = self.folders.quarantine
        reasons = [
            e.name
            for e in _entries(folder)
            if e.name.endswith(REASON_SUFFIX) and e.is_file(follow_symlinks=False)
        ]
        ended = self._ended(cutoff)
        for name in reasons:
            reason = folder / name
            try:
                document = json.loads(read_regular_file(reason, _REASON_MAX_BYTES, what=name))
                written = reason.lstat().st_mtime
            except (OSError, ValueError, LabspoolError):
                continue  # not a reason file labspool wrote: left to a person
            if not isinstance(document, dict) or written > cutoff:
                continue
            job_id = document.get("job_id")
            known = isinstance(job_id, str) and self.store.read.get(job_id) is not None
            if known and job_id not in ended:
                continue  # its job has not ended, or not long enough
            parts = [folder / n for n in _item_names(name.removesuffix(REASON_SUFFIX), document)]
            if any(p.is_dir() and not p.is_symlink() for p in parts):
                continue  # not an item a daemon quarantines: left to a person
            freed = self._unlink_all([*parts, reason], swept)  # the reason file last
            if freed is None:
                break  # a folder that refuses removals: said once
            swept.removed += 1
            swept.bytes += freed
        self._sync(folder, swept)

    # -- the store --------------------------------------------------------------------------

    def _ended(self, cutoff: float) -> dict[str, EndedJob]:
        """The jobs ended by *cutoff*: of those ended when the run began (read once, for
        every kind; what each kind removes is checked again where it must be)."""
        if self._ended_by_now is None:
            with self.store.snapshot() as view:
                self._ended_by_now = Housekeeping.ended_before(view, self.now)
        return {k: j for k, j in self._ended_by_now.items() if j.ended_at <= cutoff}

    def _upkeep(self, vacuum: bool) -> StoreUpkeep:
        database = self.folders.database
        log = _size_of(database.with_name(database.name + "-wal"))
        before = _size_of(database) + log
        store_upkeep.refresh_statistics(self.store)
        if vacuum:
            store_upkeep.vacuum(self.store)
        truncated = store_upkeep.checkpoint(self.store)
        after = _size_of(database) + _size_of(database.with_name(database.name + "-wal"))
        return StoreUpkeep(vacuum, truncated, log, before, after)

    # -- removing ---------------------------------------------------------------------------

    def _unlink(self, path: Path, swept: Swept) -> int | None:
        """*path* removed (not in a dry run): its bytes; :data:`_GONE` if it was gone
        already; None if it could not be removed (said in *swept*'s errors)."""
        try:
            size = path.lstat().st_size
            if not self.dry_run:
                path.unlink()
        except FileNotFoundError:
            return _GONE
        except OSError as exc:
            swept.errors.append(f"{path}: {exc.strerror or exc}")
            return None
        return size

    def _unlink_all(self, paths: list[Path], swept: Swept) -> int | None:
        """*paths* removed in order, up to the first that cannot be: the bytes freed, or
        None (and the paths after it are left)."""
        freed = 0
        for path in paths:
            size = self._unlink(path, swept)
            if size is None:
                return None
            freed += max(0, size)
        return freed

    @staticmethod
    def _count(swept: Swept, size: int | None) -> None:
        if size is not None and size != _GONE:
            swept.removed += 1
            swept.bytes += size

    def _sync(self, folder: Path, swept: Swept) -> None:
        if self.dry_run or not swept.removed:
            return
        try:
            fsync_dir(folder)
        except OSError as exc:
            swept.errors.append(f"{folder}: not synced: {exc.strerror or exc}")


def _daemons_stopped(state: Path) -> list[int]:
    """The daemons' locks, held (none of them may run during a VACUUM)."""
    held: list[int] = []
    try:
        for name, who in DAEMON_LOCKS.items():
            try:
                held.append(exclusive_lock(state / name, who))
            except SpoolerBusy as exc:
                raise LabspoolError(
                    f"--vacuum: {exc}. VACUUM rewrites the whole store and holds its write lock "
                    "meanwhile: stop the daemons first (prune without --vacuum runs beside them)"
                ) from None
    except BaseException:
        for fd in held:
            os.close(fd)
        raise
    return held


def _entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    """The entries of *folder* that are not hidden or temporary (none: no folder)."""
    try:
        with os.scandir(folder) as listing:
            for entry in listing:
                if not is_ignored_name(entry.name):
                    yield entry
    except FileNotFoundError:
        return


def _address_names(name: str) -> list[str]:
    """The names the ledger may know a filed address file by: its own, without the
    ``.<n>`` of a free name, without the ``.missing`` of a shot that was gone."""
    names = [name]
    match = _FREE_NAME.fullmatch(name)
    if match:
        names.append(match[1])
    return names + [n.removesuffix(".missing") for n in names if n.endswith(".missing")]


def _item_names(stem: str, document: dict[str, object]) -> list[str]:
    """A reason file's item and companions: ``<stem>`` and the ``<stem>--...`` names its
    ``moved`` lists (nothing outside the folder, nothing of another item)."""
    names = [stem]
    moved = document.get("moved")
    if isinstance(moved, dict):
        for value in moved.values():
            if isinstance(value, str) and value.startswith(f"{stem}--") and "/" not in value:
                names.append(value)
    return names


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
