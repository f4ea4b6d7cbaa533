"""The virtual lab's programs, runmanager and BLACS, one at a time: started, waited for, stopped.

Each runs offscreen in a session of its own, its output in ``lab/logs/<role>.log``, and is
recorded by role in the lab's ``processes.json``. runmanager is up once it answers with its
globals files open; BLACS once labspool's plugin has written the lab's ready file.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from pathlib import Path

from spooler.core.errors import LabspoolError
from spooler.core.labprofile import activate
from spooler.core.settings import load_settings
from spooler.virtual.layout import LabLayout, process_environment
from spooler.virtual.processes import (
    LabProcesses,
    descendants,
    end_session,
    holders,
    kill_process,
    process_alive,
    terminate,
)

__all__ = [
    "START_TIMEOUT_S",
    "ExitedWhileStarting",
    "spawn",
    "start_program",
    "start_role",
    "start_until_up",
    "stop_role",
    "wait_until_up",
]

START_TIMEOUT_S = 180.0

log = logging.getLogger(__name__)


class ExitedWhileStarting(LabspoolError):
    """One of the lab's programs exited before it was up (its log's end in the message)."""

    def __init__(self, role: str, process: subprocess.Popen[bytes], log: str) -> None:
        super().__init__(f"{role} exited with code {process.returncode} while starting:\n{log}")
        self.role = role
        self.pid = process.pid


def spawn(layout: LabLayout, role: str, argv: list[str]) -> subprocess.Popen[bytes]:
    """Start *argv* for the lab, in a session of its own, its output in ``logs/<role>.log``."""
    log = (layout.logs / f"{role}.log").open("ab")
    try:
        return subprocess.Popen(
            argv,
            cwd=layout.lab,
            env=process_environment(layout),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def start_program(layout: LabLayout, processes: LabProcesses, role: str) -> subprocess.Popen[bytes]:
    """Start the suite's program *role* (``python -m <role>``) and record it."""
    process = spawn(layout, role, [sys.executable, "-m", role])
    processes.add(role, process.pid)
    return process


def stop_role(root: Path, role: str, *, kill: bool = False) -> list[int]:
    """Stop one of the lab's programs ("runmanager" or "blacs") and its children.

    With *kill*, the program is killed (SIGKILL, as in a crash) and its children are left
    to exit by themselves for a few seconds (BLACS's device workers do) before they are
    stopped too."""
    layout = LabLayout(root.expanduser().absolute())
    pid = LabProcesses(layout.processes).pids[role]
    children = descendants(pid)
    if not kill:
        return terminate([*children, pid])
    if not process_alive(pid):
        return terminate(children)
    kill_process(pid)
    deadline = time.monotonic() + 10.0
    while any(process_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid, *terminate(children)]


def start_role(root: Path, role: str) -> int:
    """Start one of the lab's programs again (after :func:`stop_role`); returns its pid once up."""
    layout = LabLayout(root.expanduser().absolute())
    processes = LabProcesses(layout.processes)
    if role in processes.alive():
        raise LabspoolError(f"{role} of the lab in {layout.root} runs already")
    if role == "blacs":
        layout.ready_file.unlink(missing_ok=True)
    port = load_settings(layout.root / "labspool.yaml").lab.runmanager.port
    return start_until_up(layout, processes, [role], port)[role].pid


def start_until_up(
    layout: LabLayout, processes: LabProcesses, roles: list[str], runmanager_port: int
) -> dict[str, subprocess.Popen[bytes]]:
    """Start the programs *roles* and wait until they are up.

    BLACS 3.2 with HDF5 2.0 sometimes fails its start on its own settings file ("unable to
    lock file, errno = 11" as it opens it for writing; seen in CI at the lab's first start and
    at a restart): it is started once more, after what is left of the failed one is stopped,
    and the processes that held the file are logged. A failure that is not passing fails
    again, with its message."""
    started = {role: start_program(layout, processes, role) for role in roles}
    blacs = "blacs" in roles
    try:
        wait_until_up(layout, runmanager_port, started, blacs=blacs)
    except ExitedWhileStarting as exc:
        if exc.role != "blacs":
            raise
        held = holders(layout.blacs_settings) if layout.blacs_settings.exists() else []
        log.warning(
            "BLACS exited while starting; starting it once more (its settings file open in: "
            "%s): %s",
            ", ".join(held) or "no process",
            exc,
        )
        end_session(exc.pid)
        started["blacs"] = start_program(layout, processes, "blacs")
        wait_until_up(layout, runmanager_port, started, blacs=blacs)
    return started


def wait_until_up(
    layout: LabLayout,
    runmanager_port: int,
    started: dict[str, subprocess.Popen[bytes]],
    *,
    blacs: bool = True,
) -> None:
    """Wait until runmanager (and, with *blacs*, BLACS) is up; raise if one of the *started*
    processes exits meanwhile, or after :data:`START_TIMEOUT_S`."""
    if "labscript_utils" not in sys.modules:
        activate(layout.profile)
    from runmanager.remote import Client

    client = Client(host="localhost", port=runmanager_port, timeout=1.0)
    names = load_settings(layout.root / "labspool.yaml").lab.globals
    deadline = time.monotonic() + START_TIMEOUT_S
    runmanager_up = False
    while True:
        for role, process in started.items():
            if process.poll() is not None:
                log = (layout.logs / f"{role}.log").read_text(errors="replace")[-3000:]
                raise ExitedWhileStarting(role, process, log)
        if not runmanager_up:
            # Up means: answering, and its globals files opened (it answers earlier).
            with contextlib.suppress(Exception):  # no answer within 1 s: ask again
                runmanager_up = names.shot in client.get_globals(raw=True)
        if runmanager_up and (not blacs or layout.ready_file.exists()):
            return
        if time.monotonic() > deadline:
            raise LabspoolError(f"the virtual lab did not come up within {START_TIMEOUT_S:.0f} s")
        if runmanager_up:
            time.sleep(0.1)  # BLACS signals readiness by a file its plugin writes
