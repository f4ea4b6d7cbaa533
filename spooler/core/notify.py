"""systemd's notify protocol, over the socket itself (no library that swallows errors).

A service of ``Type=notify`` gets ``$NOTIFY_SOCKET``; the daemon sends datagrams such as
``READY=1`` once it watches its folder, ``WATCHDOG=1`` at less than half of
``$WATCHDOG_USEC`` while its observer threads live (so that systemd restarts a daemon whose
observer died), and ``STOPPING=1`` when asked to stop. Without ``$NOTIFY_SOCKET`` every call
does nothing; with it, a failure to send is an error, not silence.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

__all__ = ["Heartbeat", "Notifier"]


class Notifier:
    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_interval_s = None if not watchdog_usec else watchdog_usec / 1e6 / 2.5
        self._socket: socket.socket | None = None

    @classmethod
    def from_environment(cls) -> Notifier:
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        watchdog = int(usec) if usec and (pid is None or pid == str(os.getpid())) else None
        return cls(os.environ.get("NOTIFY_SOCKET"), watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        self._socket.sendto("\n".join(fields).encode(), target)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class Heartbeat:
    """Watchdog pings at the notifier's interval, sent only while *alive()* says so."""

    def __init__(
        self, notifier: Notifier, alive: Callable[[], bool], clock: Callable[[], float]
    ) -> None:
        self.notifier = notifier
        self.alive = alive
        self.clock = clock
        self.next_at = clock()

    def beat(self) -> None:
        interval = self.notifier.watchdog_interval_s
        if interval is None or self.clock() < self.next_at:
            return
        if self.alive():
            self.notifier.watchdog()
        self.next_at = self.clock() + interval  # a dead observer: no ping, so systemd acts

    def seconds_left(self) -> float:
        if self.notifier.watchdog_interval_s is None:
            return float("inf")
        return max(0.0, self.next_at - self.clock())
