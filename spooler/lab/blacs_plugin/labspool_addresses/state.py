"""BLACS's side as the plugin's control channel sees it: its queue, its device tabs.

BLACS's side is handed in as :class:`QueueOps` (the plugin implements it with BLACS's queue
manager and tabs, in BLACS's main thread), so that the control channel imports nothing from
Qt and runs in tests without BLACS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["FATAL", "QueueOps", "QueueSnapshot", "TabState"]

FATAL = "fatal error"  # a device tab's state after an exception it cannot handle


@dataclass(frozen=True, slots=True)
class TabState:
    """A BLACS device tab as the plugin sees it."""

    name: str
    state: str  # the tab's state machine: 'idle', 'fatal error', ...
    error: str  # its ``error_message`` as BLACS keeps it (HTML; empty when none)

    @property
    def in_error(self) -> bool:
        return self.state == FATAL or bool(self.error.strip())

    @property
    def ready(self) -> bool:
        """Out of error and idle (a restarted tab is so once its worker is up again)."""
        return not self.in_error and self.state == "idle"


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """BLACS's queue manager at one moment (read in one go in its main thread)."""

    paused: bool
    status: str
    queued: list[str] = field(default_factory=list)
    tabs: list[TabState] = field(default_factory=list)
    # BLACS's queue manager thread runs (it dies on an error in its own error handling,
    # e.g. a read-only shot folder on another file system than /tmp; BLACS then holds its
    # queue but never runs it again)
    manager_alive: bool = True


class QueueOps(Protocol):
    def queued(self) -> list[str]:
        """The paths of the shots in BLACS's queue, in order."""

    def remove(self, paths: Iterable[str]) -> list[str]:
        """Take these shots out of the queue; returns those that were there."""

    def running(self) -> str | None:
        """The shot BLACS is running now (None when idle)."""

    def abort(self) -> bool:
        """Abort the running shot; False when there is nothing to abort."""

    def running_since(self) -> float | None:
        """When the running shot started (wall clock; None when idle)."""

    def snapshot(self) -> QueueSnapshot:
        """The queue, its pause and status text, and the device tabs, at one moment."""

    def paused(self) -> bool:
        """Whether the queue is paused (``manager_paused``; asked once a second)."""

    def set_paused(self, paused: bool) -> None:
        """Pause or unpause the queue (the pause button)."""

    def tabs(self) -> list[TabState]:
        """The device tabs."""

    def restart(self, name: str) -> None:
        """Restart a device tab (its restart button: its worker processes start again)."""
