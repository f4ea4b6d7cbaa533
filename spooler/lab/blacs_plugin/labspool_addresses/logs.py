"""The control channel's log: BLACS's logger for the plugin, and logging that never raises."""

from __future__ import annotations

import contextlib
import logging

__all__ = ["log", "logger"]

logger = logging.getLogger("BLACS.plugin.labspool_addresses.control")


def log(level: int, message: str, *args: object, exc_info: bool = False) -> None:
    """Log, and never raise: BLACS's log handler (zlog) can time out, and a logging call that
    raised ended the control thread for good (no withdrawal answered until BLACS restarted)."""
    with contextlib.suppress(Exception):
        logger.log(level, message, *args, exc_info=exc_info)
