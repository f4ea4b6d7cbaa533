"""systemd's notify protocol: READY, watchdog pings tied to the observer, STOPPING on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spooler.core.notify import Notifier
from spooler.core.settings import Settings
from spooler.pipeline.daemon import Spooler
from tests.fakes import RecordingLab


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    yield path, sock
    sock.close()


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_without_a_socket_nothing_is_sent() -> None:
    notifier = Notifier(None)
    notifier.ready("x")  # no error, no effect
    assert not notifier.enabled and notifier.watchdog_interval_s is None


def test_a_missing_socket_is_an_error_not_silence(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    try:
        with pytest.raises(OSError):
            notifier.ready("x")
    finally:
        notifier.close()


@pytest.mark.parametrize("module", ["spooler.cli", "result.cli"])
def test_each_daemon_process_says_ready_pings_and_stopping(
    tree: Settings, notify_socket: tuple[str, socket.socket], module: str
) -> None:
    path, sock = notify_socket
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "500000"}
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--config", str(tree.path), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = receive(sock)
        assert first[0] == "READY=1" and first[1].startswith("STATUS=watching")
        assert receive(sock) == ["WATCHDOG=1"]
        assert receive(sock) == ["WATCHDOG=1"]
        process.send_signal(signal.SIGTERM)
        while (message := receive(sock)) == ["WATCHDOG=1"]:
            pass
        assert message[0] == "STOPPING=1"
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_pings_stop_when_the_observer_thread_dies(
    tree: Settings, notify_socket: tuple[str, socket.socket]
) -> None:
    path, sock = notify_socket
    spooler = Spooler(tree, lab=RecordingLab())
    notifier = Notifier(path, watchdog_usec=250_000)  # a ping every 0.1 s
    thread = threading.Thread(target=spooler.run, kwargs={"notifier": notifier})
    thread.start()
    try:
        assert receive(sock)[0] == "READY=1"
        assert receive(sock) == ["WATCHDOG=1"]
        assert spooler.watcher is not None
        spooler.watcher._observer.stop()  # the observer thread ends, as if it had crashed
        spooler.watcher._observer.join(10)
        assert not spooler.watcher_alive()
        sock.settimeout(0.2)  # drain a ping that was already on its way
        try:
            while receive(sock) == ["WATCHDOG=1"]:
                pass
        except TimeoutError:
            pass
        sock.settimeout(1.0)  # ten intervals without a ping
        with pytest.raises(TimeoutError):
            receive(sock)
    finally:
        spooler.request_stop()
        thread.join(30)
        spooler.close()
        notifier.close()
