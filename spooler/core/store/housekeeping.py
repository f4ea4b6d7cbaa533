"""What ``labspool prune`` asks the job store (named queries): which jobs ended, and when,
and which job and attempt each address file of the ledger belongs to.

A job has ended when its state is one of :data:`spooler.core.states.FINISHED`; it ended
when it last entered that state in its current attempt (its history's time; the record's
``updated_at`` if the history has none). Nothing here writes: pruning removes files, never
a row of the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spooler.core.states import FINISHED, JobState
from spooler.core.store.reader import Reader

__all__ = ["EndedJob", "Housekeeping"]

_CHUNK = 500  # addresses per statement of Housekeeping.shot_owners


@dataclass(frozen=True, slots=True)
class EndedJob:
    job_id: str
    attempt: int  # the attempt that ended (every earlier one had ended before it)
    state: JobState
    ended_at: float  # Unix time


class Housekeeping:
    """The queries of pruning; each takes the view (a Reader or a Transaction) it runs in."""

    @staticmethod
    def ended_before(view: Reader, cutoff: float) -> dict[str, EndedJob]:
        """The jobs that have ended, at or before *cutoff* (a Unix time), by job id."""
        states = sorted(s.value for s in FINISHED)
        marks = ", ".join("?" for _ in states)
        rows = view.execute(
            "SELECT job_id, attempt, state, ended_at FROM ("
            "SELECT j.job_id, j.attempt, j.state, COALESCE((SELECT MAX(t.at) FROM transitions t "
            "WHERE t.job_id = j.job_id AND t.attempt = j.attempt AND t.to_state = j.state), "
            f"j.updated_at) AS ended_at FROM jobs j WHERE j.state IN ({marks})"
            ") WHERE ended_at <= ?",
            (*states, cutoff),
        )
        return {
            str(job_id): EndedJob(str(job_id), int(attempt), JobState(state), float(at))
            for job_id, attempt, state, at in rows
        }

    @staticmethod
    def shot_owners(view: Reader, addresses: Iterable[str]) -> dict[str, tuple[str, int]]:
        """The (job id, attempt) of each of *addresses* the ledger has a row for, and whose
        row names its job; the others are left out."""
        wanted = list(dict.fromkeys(addresses))
        owners: dict[str, tuple[str, int]] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows = view.execute(
                "SELECT address, job_id, attempt FROM shots WHERE address IN "
                f"({', '.join('?' for _ in chunk)}) AND job_id IS NOT NULL "
                "AND attempt IS NOT NULL",
                tuple(chunk),
            )
            owners.update({str(a): (str(j), int(n)) for a, j, n in rows})
        return owners
