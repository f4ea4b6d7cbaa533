"""SIGTERM and SIGINT for the daemons: the handler only asks the loop to stop.

The loop finishes its current step, closes what it holds and returns (huey's rule: signal
handlers set flags; all the work happens in the loop)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

__all__ = ["stop_on_signals"]


def stop_on_signals(request_stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
