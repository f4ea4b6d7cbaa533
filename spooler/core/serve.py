"""Running a daemon as a service: until SIGTERM or SIGINT, with systemd's notifications.

A stop signal only asks the loop to stop (huey's rule: handlers set flags; all the work
happens in the loop), which finishes its current step, says STOPPING=1 and returns; the
request is made from a thread, not the handler (see :func:`stop_on_signals`)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from spooler.core.headless import headless
from spooler.core.notify import Notifier

__all__ = ["serve", "stop_on_signals"]


class Daemon(Protocol):
    def request_stop(self) -> None: ...

    def run(
        self, *, on_ready: Callable[[], None] | None = None, notifier: Notifier | None = None
    ) -> None: ...


def stop_on_signals(request_stop: Callable[[], None]) -> None:
    """Call *request_stop* on SIGTERM or SIGINT, from a thread of its own, never from the
    signal handler.

    A handler runs in the main thread between two of its bytecodes, wherever it is, and
    *request_stop* sets :class:`threading.Event` objects: had the main thread been
    interrupted inside that event's own ``clear()`` or ``wait()`` (which hold the event's
    lock, not a reentrant one), the handler would wait for that lock for ever, and the
    daemon with it (4 hangs in 200 SIGTERMs of a loop that waits on its event, measured).
    So the handlers do nothing; Python's C-level handler writes each signal's number to a
    pipe (``signal.set_wakeup_fd``), which a thread reads and acts on. Call from the main
    thread (signals are set there only), once.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the C handler must never block

    def watch() -> None:
        while data := os.read(read_fd, 512):
            if signal.SIGTERM in data or signal.SIGINT in data:
                request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _nothing)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    # A forked child would write its own signals into this process's pipe (the workers are
    # spawned, not forked, but nothing else may stop the daemon this way).
    os.register_at_fork(after_in_child=_forget_wakeup_fd)
    threading.Thread(target=watch, name="stop-signals", daemon=True).start()


def _forget_wakeup_fd() -> None:
    with contextlib.suppress(ValueError):  # not the main thread: nothing to forget
        signal.set_wakeup_fd(-1)


def _nothing(signum: int, frame: FrameType | None) -> None:
    """A handler, so that the signal does not end the process (see stop_on_signals)."""


def serve(daemon: Daemon) -> None:
    """Run *daemon* until a stop signal, notifying systemd when run under it."""
    headless()
    stop_on_signals(daemon.request_stop)
    notifier = Notifier.from_environment()
    try:
        daemon.run(notifier=notifier)
    finally:
        notifier.close()
