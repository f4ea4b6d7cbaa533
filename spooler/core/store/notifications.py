"""The lab's outbox in the job store (the table ``notifications``): the notifier's queries.

A message is added inside the transaction whose change it tells of
(:meth:`~spooler.core.store.transaction.Transaction.notify`: it exists only if that change is
committed); the notifier (:mod:`spooler.pipeline.notifications`) reads here what is due and
marks what it sent, what failed (to be tried again later) and what it gave up.
"""

from __future__ import annotations

from collections.abc import Iterable

from spooler.core.store.reader import Reader
from spooler.core.store.records import NotificationRow
from spooler.core.store.transaction import Transaction

__all__ = ["NotificationRows"]


class NotificationRows:
    """The notifier's queries of the outbox; each takes the view it runs in."""

    @staticmethod
    def due(view: Reader, now: float, limit: int = 100) -> list[NotificationRow]:
        """Messages not sent nor dropped, whose next try is due, oldest first."""
        rows = view.execute(
            "SELECT id, at, kind, job_id, title, body, tries, next_try_at FROM notifications "
            "WHERE sent_at IS NULL AND dropped_at IS NULL "
            "AND (next_try_at IS NULL OR next_try_at <= ?) ORDER BY id LIMIT ?",
            (now, limit),
        )
        return [NotificationRow(*row) for row in rows]

    @staticmethod
    def sent_since(view: Reader, since: float) -> int:
        """Messages delivered since *since* (the rate limit's count)."""
        (count,) = view.execute(
            "SELECT COUNT(*) FROM notifications WHERE sent_at >= ?", (since,)
        ).fetchone()
        return int(count)

    @staticmethod
    def pending(view: Reader) -> int:
        """Messages neither sent nor dropped (through the index notifications_unsent)."""
        (count,) = view.execute(
            "SELECT COUNT(*) FROM notifications WHERE sent_at IS NULL AND dropped_at IS NULL"
        ).fetchone()
        return int(count)

    @staticmethod
    def sent(tx: Transaction, ids: Iterable[int]) -> None:
        for i in ids:
            tx.execute(
                "UPDATE notifications SET sent_at = ?, tries = tries + 1 WHERE id = ?", (tx.now, i)
            )

    @staticmethod
    def failed(
        tx: Transaction, ids: Iterable[int], error: str, next_try_at: float, *, drop: bool = False
    ) -> None:
        """A try of *ids* failed with *error*: the next at *next_try_at*, or none (*drop*)."""
        for i in ids:
            tx.execute(
                "UPDATE notifications SET tries = tries + 1, last_error = ?, next_try_at = ?, "
                "dropped_at = ? WHERE id = ?",
                (error, next_try_at, tx.now if drop else None, i),
            )
