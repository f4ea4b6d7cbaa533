"""`labspool lab up` and `labspool lab restart blacs` when BLACS fails its start: started
once more, what the failed one left is stopped, and who held the file is logged.

BLACS 3.2 with HDF5 2.0 failed its start in CI on its own settings file ("unable to lock
file, errno = 11"), once at the lab's first start and once at a restart. Here that file is
held locked (as HDF5 locks it: flock) until a BLACS has failed on it; the lab must then come
up with another BLACS.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from pathlib import Path

import h5py
import pytest

from spooler.virtual.processes import LabProcesses, process_alive
from tests.labtools import cli, needs_suite

pytestmark = [pytest.mark.lab, pytest.mark.slow, needs_suite]


class Held:
    """BLACS's settings file held with a reader's lock (BLACS cannot open it to write) by this
    process, until BLACS's log tells of a failure on it."""

    def __init__(self, settings: Path, log: Path) -> None:
        self.fd = os.open(settings, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        self.log = log
        self.failures = self.failures_logged() + 1
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._release_after_failure, daemon=True)
        self.thread.start()

    def _release_after_failure(self) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.failures_logged() >= self.failures:
                break
            time.sleep(0.2)  # (BLACS's log is written by another process: no event to await)
        os.close(self.fd)  # releases the lock
        self.released.set()

    def failures_logged(self) -> int:
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count("unable to lock file")

    def join(self) -> None:
        self.thread.join(10)
        assert self.released.is_set()


def test_a_blacs_that_fails_its_start_is_started_once_more(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    settings = root / "lab" / "profile" / "app_saved_configs" / "blacs"
    settings.mkdir(parents=True)
    held = settings / f"{socket.gethostname()}_BLACS.h5"
    with h5py.File(held, "w"):
        pass  # a settings file as BLACS makes it (empty)
    log = root / "lab" / "logs" / "blacs.log"
    holder = Held(held, log)
    try:
        up = cli("lab", "up", str(root))
        holder.join()
        assert up.returncode == 0, up.stderr[-3000:]
        assert "BLACS exited while starting; starting it once more" in up.stderr
        assert log.read_text(errors="replace").count("BLACS version") == 2, "two BLACS started"
        pids = LabProcesses(root / "lab" / "processes.json").pids
        assert process_alive(pids["blacs"])

        first = pids["blacs"]
        holder = Held(held, log)
        restarted = cli("lab", "restart", str(root), "blacs")
        holder.join()
        assert restarted.returncode == 0, restarted.stderr[-3000:]
        assert "BLACS exited while starting; starting it once more" in restarted.stderr
        assert log.read_text(errors="replace").count("BLACS version") == 4, "two more BLACS"
        pids = LabProcesses(root / "lab" / "processes.json").pids
        assert pids["blacs"] != first and process_alive(pids["blacs"])
        assert not process_alive(first)
    finally:
        down = cli("lab", "down", str(root))
        assert down.returncode == 0, down.stderr
    pids = LabProcesses(root / "lab" / "processes.json").pids
    assert not any(process_alive(pid) for pid in pids.values())
