"""The processes of a virtual lab, by process id: which run, their descendants, stopping them.

A lab records every process it starts, by role, in ``processes.json``
(:class:`LabProcesses`); they run in sessions of their own and are not necessarily this
process's children, so they are looked at through ``/proc`` and stopped by signal
(SIGTERM, then SIGKILL for what is left).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from spooler.core.fsutil import write_atomic

__all__ = [
    "LabProcesses",
    "descendants",
    "end_session",
    "holders",
    "kill_process",
    "process_alive",
    "processes_mentioning",
    "terminate",
]


class LabProcesses:
    """The processes a lab started, by role, kept in ``processes.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pids: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}

    def add(self, role: str, pid: int) -> None:
        self.pids[role] = pid
        write_atomic(self.path, json.dumps(self.pids, indent=1).encode())

    def alive(self) -> dict[str, int]:
        return {role: pid for role, pid in self.pids.items() if process_alive(pid)}


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _stats() -> Iterator[tuple[int, list[str]]]:
    """Each process's id and the fields of its ``/proc/<pid>/stat`` after its name (state,
    parent, process group, session, ...); one that ends meanwhile is left out."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for pid, fields in _stats():
        tree.setdefault(int(fields[1]), []).append(pid)
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def end_session(leader: int) -> list[int]:
    """Stop what is left of the session *leader* started (every program of a lab runs in a
    session of its own): its processes outlive it, orphaned, when it exits (BLACS's device
    workers); returns their pids."""
    return terminate([pid for pid, fields in _stats() if int(fields[3]) == leader])


def holders(path: Path) -> list[str]:
    """The processes that have *path* open, as "pid (command line)": who holds a file's lock."""
    found, target = [], str(path.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == target for fd in (entry / "fd").iterdir()):
                found.append(f"{entry.name} ({_command_line(entry).strip()[:200]})")
    return found


def _command_line(entry: Path) -> str:
    """The command line of the process ``/proc/<pid>`` *entry*, its arguments by spaces."""
    return (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line names *text* (servers the suite spawned for this lab)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in _command_line(entry):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def terminate(pids: list[int], timeout_s: float = 20.0) -> list[int]:
    """SIGTERM, wait, SIGKILL what is left; returns the pids that were running."""
    running = [pid for pid in dict.fromkeys(pids) if process_alive(pid)]
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for pid in running:
        while process_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)  # no event to wait on for a process that is not our child
        kill_process(pid)
    return running


def kill_process(pid: int) -> None:
    """SIGKILL *pid* (if it still runs) and wait until it is gone."""
    if process_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while process_alive(pid):
            _reap(pid)
            time.sleep(0.01)  # no event to wait on for a process that is not our child
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
