"""The starts of items in the job store (the table ``item_starts``): named queries.

An item (a job file, a shot) is started by a daemon, and its row counts the starts since the
machine booted; a start that never ended was a death (:mod:`spooler.core.items`).
"""

from __future__ import annotations

from spooler.core.store.reader import Reader
from spooler.core.store.transaction import Transaction

__all__ = ["ItemStarts"]


class ItemStarts:
    """The queries of the items' starts; each takes the view it runs in."""

    @staticmethod
    def get(view: Reader, daemon: str, kind: str, key: str) -> tuple[int, str] | None:
        """The item's starts and the boot they were counted in, or None."""
        row = view.execute(
            "SELECT starts, boot FROM item_starts WHERE daemon = ? AND kind = ? AND key = ?",
            (daemon, kind, key),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    @staticmethod
    def count(tx: Transaction, daemon: str, kind: str, key: str, *, boot: str) -> None:
        """One more start in this *boot* (the first of a new boot counts 1)."""
        tx.execute(
            "INSERT INTO item_starts (daemon, kind, key, starts, boot, first_at, last_at) "
            "VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (daemon, kind, key) DO UPDATE SET "
            "starts = CASE WHEN boot = excluded.boot THEN starts + 1 ELSE 1 END, "
            "boot = excluded.boot, last_at = excluded.last_at",
            (daemon, kind, key, boot, tx.now, tx.now),
        )

    @staticmethod
    def forget(tx: Transaction, daemon: str, kind: str, key: str) -> None:
        tx.execute(
            "DELETE FROM item_starts WHERE daemon = ? AND kind = ? AND key = ?",
            (daemon, kind, key),
        )
