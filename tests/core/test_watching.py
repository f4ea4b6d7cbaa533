"""The skeleton both daemons run on: the tree's lock and the loop's sleep and wake-ups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spooler.core import fsutil
from spooler.core.errors import SpoolerBusy
from spooler.core.settings import Folders, Settings
from spooler.core.states import JobState
from spooler.core.store import JobStore
from spooler.core.watching import WatchingDaemon


class Counting(WatchingDaemon):
    """Claims whatever lands in the dump folder; sleeps an hour when there is nothing."""

    name = "counting daemon"
    lock = "counting.lock"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, clock=time.monotonic, wall_clock=time.time)
        self.claimed: list[str] = []
        self.claimed_one = threading.Event()
        self.passes = 0

    @staticmethod
    def watched_folders(folders: Folders) -> tuple[Path, Path]:
        return folders.dump, folders.claimed

    def _pass(self, look: bool) -> bool:
        self.passes += 1
        if look or self.passes == 1:
            self.watched.rescan()
        else:
            self.watched.merge_hints()
        for candidate in self.watched.take(10):
            path = self.watched.claim(candidate)
            if path is not None:
                self.claimed.append(path.path.name)
                self.claimed_one.set()
        return False

    def _sleep_s(self) -> float:
        return 3600.0


def test_one_daemon_of_a_kind_per_tree(tree: Settings) -> None:
    first = Counting(tree)
    try:
        with pytest.raises(SpoolerBusy, match="another counting daemon"):
            Counting(tree)
    finally:
        first.close()
    Counting(tree).close()  # released with the first


def test_a_file_wakes_the_sleeping_loop_and_a_stop_ends_it(tree: Settings) -> None:
    daemon = Counting(tree)
    ready = threading.Event()
    thread = threading.Thread(target=daemon.run, kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(30)
        (tree.folders.dump / "a.json").write_text("{}")
        assert daemon.claimed_one.wait(10), "the watcher woke the hour-long sleep"
        assert daemon.claimed == ["a.json"]
        assert daemon.watcher_alive()
    finally:
        daemon.request_stop()
        thread.join(10)
        daemon.close()
    assert not thread.is_alive(), "a stop request ends the sleep too"
    assert not daemon.watcher_alive()


def dead_pid() -> int:
    """The process id of a process that has ended."""
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(gone.stdout)


def test_temporary_files_of_killed_processes_are_cleared_at_start(tree: Settings) -> None:
    dead = dead_pid()
    folders = tree.folders
    folders.create()
    stale = [
        folders.status / f".j.json.{dead}.140417241328512.tmp",  # a killed daemon's
        folders.addresses / f".j__experiment_0__00001.{dead}.tmp",  # a killed BLACS's
    ]
    (folders.control / "requests").mkdir()
    stale.append(folders.control / "requests" / f".a9.json.{dead}.139683542109056.tmp")
    add_job(folders, "j")  # INITIALIZING: its admission was cut
    (folders.jobs / "j").mkdir()
    stale.append(folders.jobs / "j" / f".experiment_0.py.{dead}.1.tmp")
    live = folders.status / f".k.json.{os.getpid()}.1.tmp"  # a write in progress
    other = folders.status / ".notes.tmp"  # not one of ours
    for path in [*stale, live, other]:
        path.write_text("x")
    daemon = Counting(tree)
    daemon.close()
    assert [p.exists() for p in stale] == [False] * len(stale)
    assert live.exists() and other.exists()


def add_job(folders: Folders, job_id: str, *states: JobState) -> None:
    """Record a job INITIALIZING, then through *states*."""
    store = JobStore(folders.database)
    try:
        with store.transaction() as tx:
            tx.add_job(job_id=job_id, backend="singlequdit", source_name=job_id, claim_name=job_id)
            for state in states:
                tx.transition(job_id, state)
    finally:
        store.close()


def test_a_start_after_a_clean_stop_lists_no_folder_that_grows_with_the_jobs(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: the start-up's cost must not grow with the finished jobs and their files."""
    folders = tree.folders
    folders.create()
    Counting(tree).close()  # a clean stop
    assert (folders.state / "counting.stopped").is_file()
    dead = dead_pid()
    add_job(folders, "old", JobState.QUEUED, JobState.RUNNING, JobState.DONE)
    add_job(folders, "new")  # INITIALIZING
    for job_id in ("old", "new"):
        (folders.jobs / job_id).mkdir()
    harmless = [  # never written by a daemon that stopped cleanly: not looked for
        folders.status / f".old.json.{dead}.1.tmp",
        folders.results / f".old.json.{dead}.1.tmp",
        folders.jobs / "old" / f".experiment_0.py.{dead}.1.tmp",
    ]
    stale = [folders.jobs / "new" / f".experiment_0.py.{dead}.1.tmp"]
    for path in [*harmless, *stale]:
        path.write_text("x")
    listed: list[Path] = []
    real = fsutil.clear_stale_temps

    def spy(folder: Path, *, depth: int = 0) -> int:
        listed.append(folder)
        return real(folder, depth=depth)

    monkeypatch.setattr("spooler.core.watching.clear_stale_temps", spy)
    Counting(tree).close()
    assert set(listed) == {
        folders.staging,
        folders.addresses,
        folders.control,
        folders.jobs / "new",
    }
    assert [p.exists() for p in stale] == [False]
    assert [p.exists() for p in harmless] == [True] * len(harmless)

    listed.clear()
    (folders.state / "counting.stopped").unlink()  # as a kill leaves it
    Counting(tree).close()
    assert {folders.status, folders.results, folders.quarantine} <= set(listed)
    assert folders.processed not in listed and folders.rejected not in listed
    assert folders.jobs not in listed and folders.jobs / "old" not in listed
    assert [p.exists() for p in harmless] == [False, False, True], "an ended job's folder"


def test_a_daemon_killed_leaves_no_clean_stop_and_its_temporary_files_go_at_the_next_start(
    tree: Settings,
) -> None:
    folders = tree.folders
    Counting(tree).close()
    child = (
        "import os, signal, sys\n"
        "from spooler.core.settings import load_settings\n"
        "from tests.core.test_watching import Counting\n"
        "daemon = Counting(load_settings(sys.argv[1]))\n"
        "half = daemon.settings.folders.status / f'.k.json.{os.getpid()}.1.tmp'\n"
        "half.write_text('half a status file')\n"
        "print(half, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", child, str(tree.path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    half = Path(killed.stdout.strip())
    assert half.is_file()
    assert not (folders.state / "counting.stopped").exists(), "taken at the start"
    Counting(tree).close()
    assert not half.exists()
