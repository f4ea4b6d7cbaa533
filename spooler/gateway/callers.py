"""Who asks: a request's ``username`` and ``token`` authenticated, at the user's request rate.

Each authenticated request notes the user's last use; :meth:`Callers.flush_uses` writes the
uses noted since the last flush from a worker thread, on a store connection of its own,
never in the event loop: a write waits for the daemons' write lock (and fsyncs), and the
loop must answer meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Protocol

from spooler.core.settings import Settings
from spooler.core.store import JobStore
from spooler.gateway.answers import Refused, error
from spooler.gateway.params import text
from spooler.gateway.ratelimit import RateLimiter
from spooler.gateway.users import User, Users

__all__ = ["Callers", "UserDirectory"]

log = logging.getLogger("spooler.gateway.app")  # the gateway's log lines keep their name


class UserDirectory(Protocol):
    def authenticate(self, name: str | None, token: str | None) -> User | None: ...

    def record_use(self, name: str, *, at: float | None = None) -> None: ...


class Callers:
    """The gateway's users (in *store*, unless *users* says otherwise), their request rates
    and their last uses."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        users: UserDirectory | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.users: UserDirectory = Users(store, settings) if users is None else users
        self._uses: dict[str, float] = {}
        self._use_store: JobStore | None = None
        self._use_writer: UserDirectory | None = users
        self.limiter = RateLimiter(clock=clock)

    def caller(self, source: Any, *, status: str = "ERROR") -> User:
        """The user *source*'s ``username`` and ``token`` name; refused (401, or 429 over
        their requests a second) with *status*."""
        name, token = text(source.get("username")), text(source.get("token"))
        caller = self.users.authenticate(name, token)
        if caller is None:
            raise Refused(error(401, "a valid username and token are required", status=status))
        self._uses[caller.name] = time.time()  # written by flush_uses
        if not self.limiter.allow(caller.name, caller.requests_per_s):
            raise Refused(
                error(
                    429,
                    f"more than {caller.requests_per_s:g} requests a second",
                    status=status,
                )
            )
        return caller

    async def flush_uses(self) -> None:
        """Write the users' last uses noted since the last flush, in a worker thread (each
        at most once a minute per user: :meth:`spooler.gateway.users.Users.record_use`)."""
        pending, self._uses = self._uses, {}
        if pending:
            await asyncio.to_thread(self._write_uses, pending)

    def _write_uses(self, pending: dict[str, float]) -> None:
        try:
            if self._use_writer is None:
                self._use_store = JobStore(self.settings.folders.database)
                self._use_writer = Users(self._use_store, self.settings)
            for name, at in pending.items():
                self._use_writer.record_use(name, at=at)
        except (sqlite3.Error, OSError) as exc:  # only what `user list` shows: not fatal
            log.warning("the users' last uses were not written: %s", exc)

    def close(self) -> None:
        if self._use_store is not None:
            self._use_store.close()
