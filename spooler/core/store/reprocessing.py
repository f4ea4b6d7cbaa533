"""The jobs ``labspool-result reprocess`` takes (the table ``reprocessing``): named queries.

A row per job, attempt and version of the routines: taken, and whether the job's outputs
(CSVs, result, multi-shot files) were written again with that version, which a reprocess
killed half-way finds at its next run. And which jobs ``--all`` and ``--since`` take: those
with an archived shot, a window at a time in the order they came (keyset on ``jobs.seq``),
each looked up in an index of the shots by job, state and time (``shots_by_job_archived_at``).
"""

from __future__ import annotations

from spooler.core.store.reader import Reader
from spooler.core.store.transaction import Transaction

__all__ = ["Reprocessing"]


def _archived(since: float | None) -> tuple[str, tuple[float, ...]]:
    """The condition on ``jobs`` of a job with a shot archived (at or after *since*, a Unix
    time, if given), and its parameters: one look-up in ``shots_by_job_archived_at``."""
    where = "EXISTS (SELECT 1 FROM shots WHERE shots.job_id = jobs.job_id "
    where += "AND shots.state = 'archived'"
    if since is None:
        return where + ")", ()
    return where + " AND shots.archived_at >= ?)", (since,)


class Reprocessing:
    """The queries of the reprocessed jobs; each takes the view it runs in."""

    @staticmethod
    def jobs_after(
        view: Reader, seq: int, limit: int, since: float | None = None
    ) -> list[tuple[int, str]]:
        """The next (at most *limit*) jobs after the one numbered *seq* (0: from the first)
        with an archived shot (archived at or after *since*, a Unix time, if given), in the
        order they came: each (its number, its id). The number of the last is where the next
        window starts."""
        where, args = _archived(since)
        rows = view.execute(
            f"SELECT seq, job_id FROM jobs WHERE seq > ? AND {where} ORDER BY seq LIMIT ?",
            (seq, *args, limit),
        )
        return [(int(seq), str(job_id)) for seq, job_id in rows]

    @staticmethod
    def jobs_count(view: Reader, since: float | None = None) -> int:
        """How many jobs :meth:`jobs_after` gives in all: one look-up per job of the store."""
        where, args = _archived(since)
        (count,) = view.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}", args).fetchone()
        return int(count)

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
