"""The gateway's users in the job store (the table ``gateway_users``): named queries.

A row is ``(name, operator, queued_jobs_max, job_bytes_max, requests_per_s, created_at,
last_used_at)``; the token itself is never kept, only its SHA-256 (:mod:`spooler.gateway.users`
says why that is enough).
"""

from __future__ import annotations

from typing import Any

from spooler.core.store.reader import Reader
from spooler.core.store.transaction import Transaction

__all__ = ["UserRows"]

_COLUMNS = (
    "name, operator, queued_jobs_max, job_bytes_max, requests_per_s, created_at, last_used_at"
)


class UserRows:
    """The queries of the users' table; each takes the view it runs in."""

    @staticmethod
    def with_token_hash(view: Reader, name: str) -> tuple[str, tuple[Any, ...]] | None:
        """The user's token hash and row, or None."""
        row = view.execute(
            f"SELECT token_sha256, {_COLUMNS} FROM gateway_users WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else (str(row[0]), tuple(row[1:]))

    @staticmethod
    def get(view: Reader, name: str) -> tuple[Any, ...] | None:
        row = view.execute(
            f"SELECT {_COLUMNS} FROM gateway_users WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else tuple(row)

    @staticmethod
    def all(view: Reader) -> list[tuple[Any, ...]]:
        """Every user's row, by name."""
        return [
            tuple(r) for r in view.execute(f"SELECT {_COLUMNS} FROM gateway_users ORDER BY name")
        ]

    @staticmethod
    def exists(view: Reader, name: str) -> bool:
        return (
            view.execute("SELECT 1 FROM gateway_users WHERE name = ?", (name,)).fetchone()
            is not None
        )

    @staticmethod
    def put(
        tx: Transaction,
        name: str,
        *,
        token_sha256: str,
        operator: bool,
        queued_jobs_max: int | None,
        job_bytes_max: int | None,
        requests_per_s: float | None,
    ) -> None:
        """Make (or replace) the user *name*, made now and never used."""
        tx.execute(
            "INSERT OR REPLACE INTO gateway_users (name, token_sha256, operator, "
            "queued_jobs_max, job_bytes_max, requests_per_s, created_at, last_used_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                name,
                token_sha256,
                int(operator),
                queued_jobs_max,
                job_bytes_max,
                requests_per_s,
                tx.now,
            ),
        )

    @staticmethod
    def delete(tx: Transaction, name: str) -> bool:
        """Remove the user *name*; False: there was none."""
        return tx.execute("DELETE FROM gateway_users WHERE name = ?", (name,)).rowcount > 0

    @staticmethod
    def used(tx: Transaction, name: str, *, at: float, resolution_s: float) -> None:
        """The user was authenticated at *at* (written unless a use within *resolution_s*
        before it is recorded already)."""
        tx.execute(
            "UPDATE gateway_users SET last_used_at = ? WHERE name = ? "
            "AND (last_used_at IS NULL OR last_used_at <= ?)",
            (at, name, at - resolution_s),
        )
