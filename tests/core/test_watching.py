"""The skeleton both daemons run on: the tree's lock and the loop's sleep and wake-ups."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from spooler.core.errors import SpoolerBusy
from spooler.core.settings import Folders, Settings
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


def test_temporary_files_of_killed_processes_are_cleared_at_start(tree: Settings) -> None:
    import subprocess
    import sys

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(gone.stdout)
    folders = tree.folders
    folders.create()
    stale = [
        folders.status / f".j.json.{dead}.140417241328512.tmp",  # a killed daemon's
        folders.addresses / f".j__experiment_0__00001.{dead}.tmp",  # a killed BLACS's
    ]
    (folders.control / "requests").mkdir()
    stale.append(folders.control / "requests" / f".a9.json.{dead}.139683542109056.tmp")
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
