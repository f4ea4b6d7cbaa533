"""BLACS as the plugin reports it: ``hello``'s answer, and log lines when its queue pauses.

BLACS logs nothing when its queue manager pauses the queue: :class:`PauseWatch` looks (the
control thread asks at most once a second) and logs a WARNING with the status text and the
devices in error, and an INFO line when the queue runs again.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .logs import log
from .messages import devices_in_error, one_line
from .state import QueueOps

__all__ = ["PauseWatch", "blacs_report"]


def blacs_report(ops: QueueOps, instance: str) -> dict[str, Any]:
    """BLACS as the plugin sees it (the answer to ``hello``); *instance* names this run of
    BLACS."""
    snap = ops.snapshot()
    folders: dict[str, int] = {}
    for path in snap.queued:
        folder = os.path.dirname(os.path.abspath(path))
        folders[folder] = folders.get(folder, 0) + 1
    running = ops.running()
    return {
        "ok": True,
        "instance": instance,
        "paused": snap.paused,
        "status": snap.status,
        "queued": len(snap.queued),
        "queued_folders": folders,
        "head": snap.queued[0] if snap.queued else None,
        "running": running,
        "running_since": None if running is None else ops.running_since(),
        "devices_in_error": devices_in_error(snap.tabs),
        "manager_alive": snap.manager_alive,
    }


class PauseWatch:
    """Logs BLACS's queue (through *ops*) becoming paused and running again."""

    def __init__(self, ops: QueueOps) -> None:
        self.ops = ops
        self._pause_pending = False  # seen paused once; logged at the next look
        self._pause_logged = False

    def look(self) -> None:
        """Log BLACS's queue becoming paused (a WARNING, with its status text and the devices
        in error) and running again (INFO). The WARNING waits for the next look: BLACS sets
        its status text just after the pause."""
        paused = self.ops.paused()
        if not paused:
            self._pause_pending = False
            if self._pause_logged:
                self._pause_logged = False
                log(logging.INFO, "labspool control: BLACS's queue runs again")
            return
        if self._pause_logged:
            return
        if not self._pause_pending:
            self._pause_pending = True
            return
        self._pause_pending = False
        self._pause_logged = True
        snap = self.ops.snapshot()
        errors = devices_in_error(snap.tabs)
        log(
            logging.WARNING,
            "labspool control: BLACS's queue is paused (status: %s); devices in error: %s",
            " / ".join(line.strip() for line in snap.status.splitlines() if line.strip()),
            "; ".join(f"{e['name']}: {one_line(e['message'])}" for e in errors)
            if errors
            else "none",
        )
