"""A job's admission through ``post_job``: its size, the user's byte budget, their quota.

A job is refused (413) over the smaller of the user's ``job_bytes_max`` and the tree's
``job_file_max_bytes``, and (429) over the user's ``post_bytes_per_s`` or when the user has
``queued_jobs_max`` jobs waiting already. The waiting jobs are counted and the job submitted
under the user's lock, so that concurrent posts cannot all see room for one more. A job goes
into the dump folder through the same atomic submission as ``labspool submit``
(:mod:`spooler.core.submission`), under an id of the gateway's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from spooler.core.jobid import new_job_id
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobStore
from spooler.core.submission import JobIdTaken, submit_job
from spooler.gateway.answers import Refused, error
from spooler.gateway.jobs import pending_files
from spooler.gateway.ratelimit import RateLimiter
from spooler.gateway.users import User

__all__ = ["WAITING", "Admission"]

WAITING = (JobState.INITIALIZING, JobState.QUEUED, JobState.RUNNING)


class Admission:
    """Jobs admitted into the tree *settings* describes (its waiting jobs read from *store*)."""

    def __init__(
        self, settings: Settings, store: JobStore, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.store = store
        self.byte_limiter = RateLimiter(clock=clock)  # post_job's bytes, per user
        self._quota_locks: dict[str, asyncio.Lock] = {}  # per user: count and submit as one

    async def admit(self, caller: User, data: bytes) -> str:
        """Submit the job *data* for *caller* if they may; returns its id."""
        limit = min(caller.job_bytes_max, self.settings.limits.job_file_max_bytes)
        if len(data) > limit:
            raise Refused(error(413, f"the job has {len(data)} bytes, over {limit}"))
        rate = self.settings.gateway.post_bytes_per_s
        if not self.byte_limiter.allow(caller.name, rate, 2 * rate, cost=len(data)):
            raise Refused(error(429, f"more than {rate} bytes of jobs a second"))
        return await self._within_quota(caller, data)

    async def _within_quota(self, caller: User, data: bytes) -> str:
        """Submit *data* for *caller* within their quota: counted and submitted under the
        user's lock, so that concurrent posts cannot all see room for one more."""
        async with self._quota_locks.setdefault(caller.name, asyncio.Lock()):
            waiting = self._waiting(caller.name)
            if waiting >= caller.queued_jobs_max:
                raise Refused(
                    error(
                        429,
                        f"{caller.name} has {waiting} job(s) waiting, the most allowed is "
                        f"{caller.queued_jobs_max}",
                    )
                )
            return await asyncio.to_thread(self._submit, data, caller.name)

    def _submit(self, data: bytes, user: str) -> str:
        for _ in range(5):
            try:
                return submit_job(self.settings.folders, data, job_id=new_job_id(), user=user)
            except JobIdTaken:
                continue  # a clash of random ids: another one
        raise Refused(error(503, "could not find a free job id"))

    def _waiting(self, user: str) -> int:
        """The user's jobs not yet finished: in the dump and claimed folders, and in the store
        (looked at last: a job is recorded before its claimed file goes), each once."""
        pending = pending_files(self.settings.folders, user)
        return len(pending | self.store.read.waiting_job_ids(user, WAITING))
