"""spooler.virtual.processes without a lab: who holds a file, a session's end, the record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from spooler.virtual.processes import LabProcesses, end_session, holders, process_alive


def test_holders_name_the_processes_that_have_a_file_open(tmp_path: Path) -> None:
    held = tmp_path / "settings.h5"
    held.write_bytes(b"")
    assert holders(held) == []
    with held.open("rb"):
        (mine,) = holders(held)
    assert mine.startswith(f"{os.getpid()} (") and "python" in mine
    assert holders(held) == []


def test_holders_follow_the_file_not_its_name(tmp_path: Path) -> None:
    held, other = tmp_path / "a", tmp_path / "b"
    held.write_bytes(b"")
    other.write_bytes(b"")
    with other.open("rb"):
        assert holders(held) == []


def test_end_session_stops_what_a_leader_left(tmp_path: Path) -> None:
    # a leader that starts a child in its session and exits at once: the child is orphaned
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print(p.pid, flush=True)",
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    ) as leader:
        assert leader.stdout is not None
        child = int(leader.stdout.readline())
    assert process_alive(child)
    assert end_session(leader.pid) == [child]
    assert not process_alive(child)


def test_the_record_of_processes_survives_a_reread(tmp_path: Path) -> None:
    record = LabProcesses(tmp_path / "processes.json")
    record.add("zlock", os.getpid())
    again = LabProcesses(tmp_path / "processes.json")
    assert again.pids == {"zlock": os.getpid()}
    assert again.alive() == {"zlock": os.getpid()}
