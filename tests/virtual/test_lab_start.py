"""`labspool lab up` when BLACS fails its first start: started once more, and what the failed
one left is stopped.

BLACS 3.2 with HDF5 2.0 once failed its start in CI on its own settings file ("unable to
lock file, errno = 11"). Here that file is held locked (as HDF5 locks it: flock) until the
first BLACS has failed on it; the lab must then come up with a second BLACS.
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


def test_a_blacs_that_fails_its_start_is_started_once_more(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    settings = root / "lab" / "profile" / "app_saved_configs" / "blacs"
    settings.mkdir(parents=True)
    held = settings / f"{socket.gethostname()}_BLACS.h5"
    with h5py.File(held, "w"):
        pass  # a settings file as BLACS makes it (empty)
    log = root / "lab" / "logs" / "blacs.log"
    fd = os.open(held, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a reader's lock: BLACS cannot open it to write
    released = threading.Event()

    def release_after_the_first_failure() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if log.exists() and "unable to lock file" in log.read_text(errors="replace"):
                break
            time.sleep(0.2)  # (BLACS's log is written by another process: no event to await)
        os.close(fd)  # releases the lock
        released.set()

    releaser = threading.Thread(target=release_after_the_first_failure, daemon=True)
    releaser.start()
    try:
        up = cli("lab", "up", str(root))
        releaser.join(10)
        assert released.is_set()
        assert up.returncode == 0, up.stderr[-3000:]
        assert "BLACS exited while starting; starting it once more" in up.stderr
        assert log.read_text(errors="replace").count("BLACS version") == 2, "two BLACS started"
        pids = LabProcesses(root / "lab" / "processes.json").pids
        assert process_alive(pids["blacs"])
    finally:
        down = cli("lab", "down", str(root))
        assert down.returncode == 0, down.stderr
    pids = LabProcesses(root / "lab" / "processes.json").pids
    assert not any(process_alive(pid) for pid in pids.values())
