"""The jobs ``labspool-result reprocess`` takes (the table ``reprocessing``): named queries.

A row per job, attempt and version of the routines: taken, and whether the job's outputs
(CSVs, result, multi-shot files) were written again with that version, which a reprocess
killed half-way finds at its next run.
"""

from __future__ import annotations

from spooler.core.store.reader import Reader
from spooler.core.store.transaction import Transaction

__all__ = ["Reprocessing"]


class Reprocessing:
    """The queries of the reprocessed jobs; each takes the view it runs in."""

    @staticmethod
    def take(tx: Transaction, job_id: str, attempt: int, routines: str) -> None:
        """The job is reprocessed with *routines* (kept if it was already)."""
        tx.execute(
            "INSERT OR IGNORE INTO reprocessing (job_id, attempt, routines) VALUES (?, ?, ?)",
            (job_id, attempt, routines),
        )

    @staticmethod
    def outputs_done(view: Reader, job_id: str, attempt: int, routines: str) -> bool | None:
        """Whether the job's outputs were written again with *routines* (None: not taken)."""
        row = view.execute(
            "SELECT outputs_done FROM reprocessing WHERE job_id = ? AND attempt = ? "
            "AND routines = ?",
            (job_id, attempt, routines),
        ).fetchone()
        return None if row is None else bool(row[0])

    @staticmethod
    def outputs_written(tx: Transaction, job_id: str, attempt: int, routines: str) -> None:
        tx.execute(
            "UPDATE reprocessing SET outputs_done = 1 WHERE job_id = ? AND attempt = ? "
            "AND routines = ?",
            (job_id, attempt, routines),
        )
