"""What ``labspool prune`` did (:mod:`spooler.core.retention`): per kind of file, what its
setting said and what was removed (or would be, in a dry run); what the job store's upkeep
did; the temporary files of killed writers it cleared."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PruneReport", "StoreUpkeep", "Swept"]


@dataclass
class Swept:
    """One kind of file: what its setting said and what was removed (or would be)."""

    kind: str  # the setting's name without "_days"
    days: float | None  # None: kept for ever
    unit: str  # what `removed` counts: file, folder, item
    before: float | None = None  # jobs ended at or before this Unix time
    removed: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StoreUpkeep:
    """What the job store's upkeep did, and the sizes of its files."""

    vacuumed: bool
    log_truncated: bool  # False: a reader kept the checkpoint from finishing (harmless)
    log_bytes_before: int  # the write-ahead log's
    bytes_before: int  # the database's and its write-ahead log's
    bytes_after: int


@dataclass
class PruneReport:
    at: float
    dry_run: bool
    kinds: list[Swept] = field(default_factory=list)
    store: StoreUpkeep | None = None  # None: a dry run, or no store yet
    # hidden temporary files of killed writers (the CLI, the gateway, reprocess) removed from
    # the folders a daemon's start looks at only after an unclean stop
    stale_temps_removed: int = 0

    @property
    def errors(self) -> list[str]:
        return [error for swept in self.kinds for error in swept.errors]
