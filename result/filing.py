"""Filing address files: those of finished shots moved out of ``claimed`` into ``processed``.

An address file stays in the ``claimed`` folder while its shot is in hand: that is how a
daemon started anew finds the shots left to it. It is filed last, once its shot is archived
(and the local copy removed), given up, or found missing; a kill before that leaves it to
be finished again. A claimed file whose name the ledger has seen but that names another
shot (a requeued job, a late repeat) is renamed to a name the ledger has not seen.
"""

from __future__ import annotations

import os
from pathlib import Path

from spooler.core.fsutil import exists_in, free_name, fsync_dir
from spooler.core.jobs import Jobs
from spooler.core.store.shots import Ledger

__all__ = ["AddressFiles"]


class AddressFiles:
    """The ``claimed`` and ``processed`` folders of address files."""

    def __init__(self, claimed: Path, processed: Path, jobs: Jobs) -> None:
        self.claimed = claimed
        self.processed = processed
        self.jobs = jobs

    def file(self, paths: list[Path], suffix: str = "") -> None:
        """Address files of finished shots to ``processed`` (two folder syncs in all)."""
        moved = False
        processed = self.processed
        for path in paths:
            if not path.exists():
                continue
            name = free_name(path.name + suffix, exists_in(processed), keep_suffix=False)
            os.rename(path, processed / name)
            moved = True
        if moved:
            fsync_dir(processed)
            fsync_dir(self.claimed)

    def rename_claimed(self, address_path: Path) -> Path:
        """A claimed address file under a name the ledger has not seen."""
        on_disk = exists_in(address_path.parent)

        def taken(name: str) -> bool:
            return on_disk(name) or Ledger.get(self.jobs.read, name) is not None

        candidate = address_path.with_name(free_name(address_path.name, taken))
        os.rename(address_path, candidate)
        fsync_dir(candidate.parent)
        return candidate
