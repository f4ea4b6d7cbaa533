"""The database file's own upkeep: its query statistics, its write-ahead log, its free pages.

- :func:`refresh_statistics`: ``ANALYZE`` within ``PRAGMA analysis_limit`` (a sample of each
  index, milliseconds however large the store), then ``PRAGMA optimize``: the query planner's
  statistics (``sqlite_stat1``) follow the tables as they grow. It writes a few rows and holds
  the write lock for as long.
- :func:`checkpoint`: ``PRAGMA wal_checkpoint(TRUNCATE)``: every page of the write-ahead log
  copied into the database and the log cut to zero bytes. It waits (up to the store's busy
  time-out) for readers of older pages to finish; when one does not, it copies what it may
  and says so, which is harmless (the log is cut at a later checkpoint).
- :func:`vacuum`: ``VACUUM``: the whole database written again without its free pages (a
  store never shrinks by itself: SQLite reuses freed pages but keeps the file's size). It
  holds the write lock for the whole rewrite (seconds to minutes for a store of gigabytes),
  so every other writer waits for it (and gives up after its busy time-out of 30 s), and it
  needs free space for two more copies of the file at worst: one in SQLite's temporary
  folder and one in the write-ahead log, until the checkpoint after it. Only on request,
  with the daemons stopped.
"""

from __future__ import annotations

from spooler.core.store import JobStore

__all__ = ["ANALYSIS_LIMIT", "checkpoint", "refresh_statistics", "vacuum"]

ANALYSIS_LIMIT = 1000  # rows of each index ANALYZE looks at, at most


def refresh_statistics(store: JobStore) -> None:
    """The query planner's statistics brought up to date (a sample of each index)."""
    read = store.read
    read.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
    read.execute("ANALYZE")
    read.execute("PRAGMA optimize")


def checkpoint(store: JobStore) -> bool:
    """The write-ahead log copied into the database and truncated (outside a transaction):
    True; False when a reader or writer kept it from finishing (what it could was copied)."""
    busy, _log, _copied = store.read.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy


def vacuum(store: JobStore) -> None:
    """The database rewritten without its free pages (outside a transaction; see above)."""
    store.read.execute("VACUUM")
