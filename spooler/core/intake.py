"""The dump folder: finding job files, oldest first, and claiming each exactly once.

watchdog's events are hints, not a source of truth (inotify drops events under load and
sees nothing on network shares), so the folder is also rescanned in full at start-up and
at an interval. Arrival order is the inode change time (a rename into the folder sets it),
then the name. A file is claimed by renaming it out of the folder: of two claimants the
loser gets FileNotFoundError, so no job is taken twice.

Fair between submitters (issue 19): with :meth:`DumpFolder.share_by` (the spooler's: the
user of ``file_<id>-<user>.json``, :func:`submitter_of`), files are taken round-robin
across submitters, each submitter's oldest first: the submitter served longest ago goes
next, one with nothing waiting before had no turn yet and goes first. So a burst of one
user's files never holds another's file for more than one turn. ``take`` may also be
bounded in bytes (at least one file), so that a pass over big files stays short.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from spooler.core.errors import JobRejected
from spooler.core.fsutil import is_ignored_name
from spooler.core.jobid import parse_job_file_name
from spooler.core.names import escaped, is_plain, plain_name

__all__ = ["ANONYMOUS", "Candidate", "Claim", "DumpFolder", "DumpWatcher", "submitter_of"]

log = logging.getLogger(__name__)

# A burst larger than this many event hints is handled by a full rescan instead.
_MAX_HINTS = 4096


def _move_event_delay_s() -> float:
    """How long watchdog's inotify emitter holds back an unpaired IN_MOVED_FROM.

    watchdog (7.x, ``InotifyMoveEventGrouper.delay``) keeps a move-out event for 0.5 s in
    case its IN_MOVED_TO follows, and events queue behind it in order. Every claim renames a
    file out of the dump folder, so for that long after a claim no event arrives in time and
    the spooler lists the folder itself (see :meth:`DumpFolder.events_delayed`).
    """
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # another platform or watchdog version: assume the documented value
        return 0.5
    return float(InotifyMoveEventGrouper.delay)


MOVE_EVENT_DELAY_S = _move_event_delay_s()
# How often an idle loop lists the folder itself while events lag behind its own claims.
LOOK_INTERVAL_S = 0.005


# The submitter of files whose name names no user (``<id>.json``, ``job-<id>.json``, and
# names that give no job id): they all count as one.
ANONYMOUS = ""


def submitter_of(name: str) -> str:
    """The user a job file's name names (``file_<id>-<user>.json``), else :data:`ANONYMOUS`."""
    try:
        user = parse_job_file_name(name).user
    except JobRejected:
        return ANONYMOUS
    return ANONYMOUS if user is None else user


@dataclass(frozen=True, order=True, slots=True)
class Candidate:
    arrived_ns: int
    name: str = field(compare=True)
    size: int = field(default=0, compare=False)  # bytes, when it was indexed


@dataclass(frozen=True, slots=True)
class Claim:
    """A file taken out of the watched folder: where it is now, and the name it came under
    (any bytes: such a name is kept on disk under a daemon-made plain one)."""

    path: Path
    name: str

    @property
    def shown(self) -> str:
        """The name it came under, printable (:func:`spooler.core.names.escaped`)."""
        return escaped(self.name)


class DumpFolder:
    """An index of the job files waiting in the dump folder.

    Memory is bounded by the index itself (one small entry per waiting file, one per
    submitter with a file waiting) plus at most ``_MAX_HINTS`` event hints; events carry no
    payload beyond a file name.
    """

    def __init__(
        self, folder: Path, claimed: Path, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.folder = folder
        self.clock = clock
        self._last_claim = float("-inf")
        self.claimed = claimed
        self._submitter: Callable[[str], str] = _everyone
        self._queues: dict[str, list[Candidate]] = {}  # submitter -> heap of its files
        self._turns: dict[str, int] = {}  # submitter -> the turn it was last served
        self._turn = 0
        self._indexed: set[str] = set()
        self._hints: set[str] = set()
        self._hint_overflow = False
        self._lock = threading.Lock()
        self.wake = threading.Event()

    # -- fed from the observer thread ---------------------------------------------------

    def hint(self, name: str) -> None:
        """A file may have appeared (called from the watchdog thread)."""
        with self._lock:
            if len(self._hints) < _MAX_HINTS:
                self._hints.add(name)
            else:
                self._hint_overflow = True
        self.wake.set()

    # -- used by the spooler loop --------------------------------------------------------

    def share_by(self, submitter: Callable[[str], str]) -> None:
        """Take files round-robin across the submitters *submitter* finds in file names
        (e.g. :func:`submitter_of`); without it every file has the same submitter."""
        self._submitter = submitter
        self._index([c for queue in self._queues.values() for c in queue])

    def rescan(self) -> int:
        """Rebuild the index from a full listing of the folder; returns the files waiting."""
        with self._lock:
            self._hints.clear()
            self._hint_overflow = False
        found: list[Candidate] = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                candidate = self._candidate(entry.name, entry)
                if candidate is not None:
                    found.append(candidate)
        self._index(found)
        return len(found)

    def _index(self, candidates: list[Candidate]) -> None:
        queues: dict[str, list[Candidate]] = {}
        for candidate in candidates:
            queues.setdefault(self._submitter(candidate.name), []).append(candidate)
        for queue in queues.values():
            heapq.heapify(queue)
        self._queues = queues
        self._turns = {s: turn for s, turn in self._turns.items() if s in queues}
        self._indexed = {c.name for c in candidates}

    def _add(self, candidate: Candidate) -> None:
        heapq.heappush(self._queues.setdefault(self._submitter(candidate.name), []), candidate)
        self._indexed.add(candidate.name)

    def merge_hints(self) -> bool:
        """Add hinted files to the index; False when the hints overflowed (rescan instead)."""
        with self._lock:
            hints, self._hints = self._hints, set()
            overflow, self._hint_overflow = self._hint_overflow, False
        if overflow:
            return False
        for name in hints - self._indexed:
            candidate = self._candidate(name, None)
            if candidate is not None:
                self._add(candidate)
        return True

    def __len__(self) -> int:
        return len(self._indexed)

    def take(self, limit: int, *, max_bytes: int | None = None) -> list[Candidate]:
        """Up to *limit* indexed files (not yet claimed), in turns: each turn the oldest file
        of the submitter served longest ago (one that had no turn yet first, the one with
        the oldest file first among those). With *max_bytes*, files stop before their sizes
        add up to more, but the first is always taken."""
        turns = [
            (self._turns.get(submitter, -1), queue[0], submitter)
            for submitter, queue in self._queues.items()
        ]
        heapq.heapify(turns)
        taken: list[Candidate] = []
        size = 0
        while turns and len(taken) < limit:
            _, head, submitter = turns[0]
            if taken and max_bytes is not None and size + head.size > max_bytes:
                break
            queue = self._queues[submitter]
            heapq.heappop(queue)
            self._indexed.discard(head.name)
            taken.append(head)
            size += head.size
            self._turn += 1
            if queue:
                self._turns[submitter] = self._turn
                heapq.heapreplace(turns, (self._turn, queue[0], submitter))
            else:  # nothing waiting: no place in the rotation until it has again
                del self._queues[submitter]
                self._turns.pop(submitter, None)
                heapq.heappop(turns)
        return taken

    def claim(self, candidate: Candidate) -> Claim | None:
        """Rename the file into the claimed folder; None if it is gone (someone else took it).

        A name that is not plain text (not UTF-8, control characters: :mod:`spooler.core.names`)
        is claimed under a daemon-made plain name, so that nothing downstream meets it."""
        name = candidate.name if is_plain(candidate.name) else plain_name(candidate.name)
        target = self.claimed / name
        if target.exists() or target.is_symlink():
            # Only after a crash mid-claim; the earlier file is processed first (recovery).
            log.warning("%s is already in the claimed folder; it waits", escaped(name))
            return None
        try:
            os.rename(self.folder / candidate.name, target)
        except FileNotFoundError:
            return None
        self._last_claim = self.clock()
        if name != candidate.name:
            log.warning(
                "claimed %s as %s (its name is not plain text)", escaped(candidate.name), name
            )
        return Claim(target, candidate.name)

    def events_delayed(self) -> bool:
        """True while the watcher's events may lag behind our own claims (inotify only)."""
        return self.clock() - self._last_claim < MOVE_EVENT_DELAY_S + 0.05

    def idle(self, timeout_s: float, *, polling: bool) -> bool:
        """Sleep until an event, :attr:`wake`, or *timeout_s*; the caller clears :attr:`wake`.

        Returns True when the folder should be listed now because events may have been held
        back (right after our own claims, on inotify): then the sleep is kept short."""
        look = not polling and self.events_delayed()
        woken = self.wake.wait(min(timeout_s, LOOK_INTERVAL_S) if look else timeout_s)
        return look and not woken

    def _candidate(self, name: str, entry: os.DirEntry[str] | None) -> Candidate | None:
        if is_ignored_name(name):
            return None
        try:
            info = entry.stat(follow_symlinks=False) if entry else (self.folder / name).lstat()
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(info.st_mode):
            return None
        return Candidate(info.st_ctime_ns, name, info.st_size)


def _everyone(name: str) -> str:
    return ANONYMOUS


class _Handler(FileSystemEventHandler):
    """Turns any event into a hint. It never raises: an exception would kill the observer."""

    def __init__(self, hint: Callable[[str], None]) -> None:
        self._hint = hint

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            if event.event_type in ("created", "moved", "closed"):
                path = event.dest_path if event.event_type == "moved" else event.src_path
                self._hint(os.path.basename(os.fsdecode(path)))
        except Exception:  # the observer thread must survive anything
            log.exception("dump-folder event handler failed; the rescan will cover it")


class DumpWatcher:
    """A watchdog observer on the dump folder (inotify, or polling for network shares)."""

    def __init__(self, dump: DumpFolder, *, polling: bool, polling_interval_s: float) -> None:
        self.dump = dump
        self._observer: BaseObserver = (
            PollingObserver(timeout=polling_interval_s) if polling else Observer()
        )
        self._observer.schedule(_Handler(dump.hint), str(dump.folder), recursive=False)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=10)

    def alive(self) -> bool:
        """True while the observer and its emitter threads run (tied to the systemd watchdog)."""
        if not self._observer.is_alive():
            return False
        return all(emitter.is_alive() for emitter in self._observer.emitters)
