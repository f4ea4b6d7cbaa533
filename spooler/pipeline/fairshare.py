"""Fair share: where a newly queued job goes when ``queue.policy`` is ``fair``.

Queued jobs run in order of ``(queue_key, seq)`` (:meth:`spooler.core.store.Reader.queue`); with
``fifo`` a job's key is its arrival number. With ``fair`` each user's jobs are spaced one
key apart from the head of the queue: a user's new job gets the key after their last waiting
job, but never one before the head's,

    key = max(head, last_of_the_user + 1)      (head: the smallest key waiting)

so that users take turns (a start-time fair queue): user A's thousand jobs get keys
1 ... 1000, user B's one job, queued later, gets the head's key and runs second (ties go by
arrival), B's next one after A's second. Jobs without a user are one more user. ``move``
sets keys by hand and still works; a job put back in the queue keeps its key.
"""

from __future__ import annotations

from spooler.core.store import Reader
from spooler.core.store.reports import Reports

__all__ = ["fair_key"]


def fair_key(reader: Reader, submitter: str | None, job_id: str) -> float | None:
    """The key of *job_id*, just queued by *submitter*; None: keep its arrival number (the
    queue was empty)."""
    head, last = Reports.queue_keys(reader, submitter, job_id)
    if head is None:
        return None
    return head if last is None else max(head, last + 1.0)
