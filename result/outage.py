"""An outage: the store, zlock or the analysis workers away, and the daemon waiting it out.

A pass that meets a store that is unreachable or full, a lock server (zlock) that does not
answer, or analysis workers that cannot start (:class:`result.archive.StoreUnavailable`)
keeps everything local and ends; the next pass is tried after a delay that doubles from
``result.archive_retry_interval_s`` up to ``result.archive_retry_interval_max_s``, and starts
afresh once shots go through again. When an outage begins, the operators are told once
(notice ``store_unreachable``); when shots go through again, once more (``store_back``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from spooler.core.configsections import ResultSettings
from spooler.core.jobs import Jobs

__all__ = ["Outage"]

log = logging.getLogger(__name__)


class Outage:
    """The back-off of the daemon's passes while what it needs is away, and the notices."""

    def __init__(self, settings: ResultSettings, jobs: Jobs, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.jobs = jobs
        self.clock = clock
        self.retry_at = float("-inf")
        self.delay_s = settings.archive_retry_interval_s
        self.unreachable: str | None = None  # the outage being waited out

    def waiting(self) -> bool:
        """Whether the next pass is not due yet."""
        return self.clock() < self.retry_at

    def met(self, exc: Exception) -> None:
        """A pass met the outage *exc*: the next one is tried later."""
        log.warning(
            "waiting for the store, zlock or the analysis workers (next try in %.1f s): %s",
            self.delay_s,
            exc,
        )
        self.retry_at = self.clock() + self.delay_s
        self.delay_s = min(2 * self.delay_s, self.settings.archive_retry_interval_max_s)
        if self.unreachable is None:  # the outage begins: tell someone, once
            self.unreachable = str(exc)
            with self.jobs.change() as tx:
                tx.notify(
                    "store_unreachable",
                    "The result daemon waits for the store",
                    f"{exc}\nShots stay local and are archived once it is back.\n"
                    "What to do: make the store (SDS), zlock or the analysis workers "
                    "reachable again; nothing else is needed.",
                )

    def passed(self, done: int) -> None:
        """A pass went through, finishing *done* shots."""
        if self.unreachable is not None and done:
            self.unreachable = None
            with self.jobs.change() as tx:
                tx.notify(
                    "store_back",
                    "The result daemon reaches the store again",
                    "Shots are archived again.\nWhat to do: nothing.",
                )
        if done:  # shots went through: the next outage starts its back-off afresh
            self.delay_s = self.settings.archive_retry_interval_s
