"""The daemons never reach a GUI toolkit.

Importing parts of the labscript suite (``labscript_utils.connections``, which lyse's
DataFrame functions import) installs ``labscript_utils.excepthook``: on an uncaught exception
it starts a Tk window, which on a headless machine (systemd, no ``DISPLAY``) fails again
while handling the first failure. :func:`headless` puts Python's own hook back and takes the
display from the environment, so that neither the daemon nor anything it starts (a zlock
server, say) tries a window; errors go to the log only.
"""

from __future__ import annotations

import os
import sys

__all__ = ["headless"]


def headless() -> None:
    """Call once at start and again after importing the labscript suite (idempotent)."""
    for variable in ("DISPLAY", "WAYLAND_DISPLAY"):
        os.environ.pop(variable, None)
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    sys.excepthook = sys.__excepthook__
