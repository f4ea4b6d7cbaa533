"""Running a daemon as a service: until SIGTERM or SIGINT, with systemd's notifications.

The signal handlers only ask the loop to stop (huey's rule: handlers set flags; all the work
happens in the loop), which finishes its current step, says STOPPING=1 and returns."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from .headless import headless
from .notify import Notifier

__all__ = ["serve", "stop_on_signals"]


class Daemon(Protocol):
    def request_stop(self) -> None: ...

    def run(
        self, *, on_ready: Callable[[], None] | None = None, notifier: Notifier | None = None
    ) -> None: ...


def stop_on_signals(request_stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve(daemon: Daemon) -> None:
    """Run *daemon* until a stop signal, notifying systemd when run under it."""
    headless()
    stop_on_signals(daemon.request_stop)
    notifier = Notifier.from_environment()
    try:
        daemon.run(notifier=notifier)
    finally:
        notifier.close()
