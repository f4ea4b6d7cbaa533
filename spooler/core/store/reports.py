"""Sums over the job store that the views need (metrics, estimates, the fair queue): named
queries over several tables, each answered by SQL without reading the rows one by one."""

from __future__ import annotations

from dataclasses import dataclass

from spooler.core.store.reader import Reader

__all__ = ["FinishedRun", "Reports", "ShotCounts"]


@dataclass(frozen=True, slots=True)
class ShotCounts:
    """The result daemon's ledger, summed."""

    made: int  # every shot received, in whatever state now
    analysed: int  # archived
    last_received_at: float | None


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A DONE job's run on the machine (the estimates' model)."""

    shots_made: int
    first_shot_at: float
    last_shot_at: float
    running_at: float | None  # when it went RUNNING (this attempt)
    done_at: float | None
    previous_shot_at: float | None  # the last shot of any job before its first


class Reports:
    """The views' queries; each takes the view it runs in."""

    @staticmethod
    def shot_counts(view: Reader) -> ShotCounts:
        """The ledger's counts as the store keeps them (the table ``shot_counts``, a row per
        state, kept by triggers): what it costs does not grow with the ledger."""
        made = analysed = 0
        for state, count in view.execute("SELECT state, shots FROM shot_counts"):
            made += max(int(count), 0)
            if state == "archived":
                analysed += max(int(count), 0)
        (last,) = view.execute("SELECT MAX(received_at) FROM shots").fetchone()
        return ShotCounts(made, analysed, None if last is None else float(last))

    @staticmethod
    def oldest_queued_at(view: Reader) -> float | None:
        """When the longest-waiting queued job was queued (this attempt)."""
        (oldest,) = view.execute(
            "SELECT MIN((SELECT MIN(t.at) FROM transitions t WHERE t.job_id = j.job_id "
            "AND t.attempt = j.attempt AND t.to_state = 'QUEUED')) FROM jobs j "
            "WHERE j.state = 'QUEUED'"
        ).fetchone()
        return None if oldest is None else float(oldest)

    @staticmethod
    def finished_runs(view: Reader, backend: str, limit: int) -> list[FinishedRun]:
        """The last *limit* DONE jobs of *backend* that made shots, newest first."""
        rows = view.execute(
            "SELECT j.shots_made, j.first_shot_at, j.last_shot_at, "
            "  (SELECT MIN(at) FROM transitions t WHERE t.job_id = j.job_id "
            "     AND t.attempt = j.attempt AND t.to_state = 'RUNNING'), "
            "  (SELECT MAX(at) FROM transitions t WHERE t.job_id = j.job_id "
            "     AND t.attempt = j.attempt AND t.to_state = 'DONE'), "
            "  (SELECT MAX(k.last_shot_at) FROM jobs k WHERE k.last_shot_at < j.first_shot_at) "
            "FROM jobs j WHERE j.state = 'DONE' AND j.backend = ? AND j.shots_made > 0 "
            "  AND j.first_shot_at IS NOT NULL "
            "ORDER BY j.updated_at DESC LIMIT ?",
            (backend, limit),
        ).fetchall()
        return [
            FinishedRun(
                int(n),
                float(first),
                float(last),
                None if running is None else float(running),
                None if done is None else float(done),
                None if before is None else float(before),
            )
            for n, first, last, running, done, before in rows
        ]

    @staticmethod
    def queue_keys(
        view: Reader, submitter: str | None, job_id: str
    ) -> tuple[float | None, float | None]:
        """The smallest key of the queued jobs but *job_id*, and the largest of *submitter*'s."""
        (head,) = view.execute(
            "SELECT MIN(queue_key) FROM jobs WHERE state = 'QUEUED' AND job_id != ?", (job_id,)
        ).fetchone()
        (last,) = view.execute(
            "SELECT MAX(queue_key) FROM jobs WHERE state = 'QUEUED' AND job_id != ? "
            "AND submitter IS ?",
            (job_id, submitter),
        ).fetchone()
        return (None if head is None else float(head), None if last is None else float(last))
