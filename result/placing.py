"""Placing: the one path by which an analysed work copy becomes a shot on the store.

The result daemon (a shot from the lab archived) and ``labspool-result reprocess`` (an
archived shot replaced by a new analysis of it) both go through it, in this order, which is
what makes a kill at any moment lose nothing:

1. :meth:`Placing.put`, for each shot: its work copy (made durable by its task, beside its
   place) is read back, verified against the size and SHA-256 its task said, and renamed to
   its place, replacing what is there (atomic on one filesystem: :func:`result.archive.place`).
   A copy that is gone or does not verify is removed and the shot analysed again. When
   archiving, a place that the ledger gives to another shot is never taken (:class:`Taken`).
2. :meth:`Placing.settle`, for the shots put in one go: the folders of their places synced;
   then, in one transaction, the ledger records them (``archived`` at their places, or
   reanalysed) with whatever the caller records with them; only then
3. :meth:`Placing.tidy`: the work copies that earlier runs of their tasks left beside their
   places are removed and, when archiving, the local copies, whose folders are then synced.

A kill before the transaction commits leaves the old state: the shot is analysed again (a
copy of it at its place that the ledger has not recorded is replaced). After it, only the
tidying is left, which the daemon finishes when it meets the shot again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from result.archive import place
from result.task import ShotOutcome, work_copies
from spooler.core.fsutil import fsync_dir
from spooler.core.settings import Folders
from spooler.core.store import Reader, Transaction
from spooler.core.store.shots import Ledger, ShotRow

__all__ = ["Placed", "Placing", "Taken", "stored_place"]


@dataclass(frozen=True)
class Placed:
    """A shot whose analysed copy is in its place on the store, to be recorded."""

    row: ShotRow
    outcome: ShotOutcome
    target: Path


class Taken(Exception):
    """Another shot is archived at the place this one would go (never replaced)."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"another shot ({owner}) is archived at its place on the store")


def stored_place(folders: Folders, row: ShotRow) -> Path:
    """Where the result daemon archives the shot of *row* on the store."""
    job = row.job_id or "unattributed"
    experiment = row.experiment or "unknown"
    return folders.stored_shot(job, experiment, Path(row.local_path).name)


def _always(row: ShotRow) -> bool:
    return True


class Placing:
    """Analysed work copies with one suffix put in their places, recorded and tidied."""

    def __init__(
        self,
        suffix: str,
        *,
        replacing: bool,
        leftovers: Callable[[ShotRow], bool] = _always,
    ) -> None:
        """*suffix*: of the work copies (each user of the store has its own, so that none
        tidies another's); *replacing*: the copies replace archived shots (reprocess), else
        they archive shots from the lab, whose local copies are removed once recorded;
        *leftovers*: whether earlier runs of a recorded shot's tasks may have left work
        copies (looking for them lists a folder on the store: done only when there may be
        some)."""
        self.suffix = suffix
        self.replacing = replacing
        self.leftovers = leftovers

    def put(self, outcome: ShotOutcome, target: Path, row: ShotRow, read: Reader) -> bool:
        """Verify the outcome's work copy and rename it to *target*. False: the copy is gone
        or does not verify (then it is removed): analyse the shot again. A store that fails
        raises :class:`result.archive.StoreUnavailable`; when archiving, a place where the
        ledger has another shot raises :class:`Taken` (the work copy removed)."""
        assert outcome.work is not None
        work = Path(outcome.work)
        if not self.replacing:
            owner = Ledger.archived_at(read, str(target))
            if owner is not None and owner != row.address:
                with contextlib.suppress(OSError):
                    work.unlink(missing_ok=True)
                raise Taken(owner)
        # a copy of ours at target that the ledger has not recorded (a crash) is replaced
        return place(work, target, (outcome.size, outcome.sha256))

    def settle(
        self,
        placed: Sequence[Placed],
        transaction: Callable[[], AbstractContextManager[Transaction]],
        *,
        also: Callable[[Transaction], None] | None = None,
    ) -> None:
        """Shots put in their places: durable (their folders synced), recorded in one
        *transaction* (with what *also* records), then tidied (:meth:`tidy`)."""
        for folder in {item.target.parent for item in placed}:
            fsync_dir(folder)
        with transaction() as tx:
            for item in placed:
                self._record(tx, item)
            if also is not None:
                also(tx)
        self.tidy((item.row, item.target) for item in placed)

    def _record(self, tx: Transaction, item: Placed) -> None:
        outcome, row = item.outcome, item.row
        assert outcome.size is not None and outcome.sha256 and outcome.frame
        if self.replacing:
            Ledger.reanalysed(
                tx,
                row.address,
                memory=outcome.memory,
                error=None,
                size=outcome.size,
                sha256=outcome.sha256,
                frame=outcome.frame,
                routines=outcome.version,
            )
            return
        Ledger.archived(
            tx,
            row.address,
            sds_path=str(item.target),
            size=outcome.size,
            sha256=outcome.sha256,
            frame=outcome.frame,
            memory=outcome.memory,
            error=outcome.error,
            routines=outcome.version or None,
        )

    def tidy(self, shots: Iterable[tuple[ShotRow, Path]]) -> None:
        """Recorded shots, each (its row, its place): the work copies that earlier runs of its
        tasks left beside its place removed (if there may be some); when archiving, then its
        local copy. The local copies' folders are synced."""
        synced: set[Path] = set()
        for row, target in shots:
            if self.leftovers(row):
                self.remove_leftovers(target)
            local = Path(row.local_path)
            if not self.replacing and local.exists():
                local.unlink()
                synced.add(local.parent)
        for folder in synced:
            fsync_dir(folder)

    def remove_leftovers(self, target: Path) -> None:
        """Work copies of *target* with this suffix: removed if the store lets them be."""
        with contextlib.suppress(OSError):
            for leftover in work_copies(target, self.suffix):
                leftover.unlink(missing_ok=True)
