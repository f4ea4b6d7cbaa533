"""What both daemons are: one process per tree, the job store, one watched folder, one loop.

A daemon takes its tree's lock (a second one on the same tree is refused), opens the job
store, removes the temporary files of writes a kill cut short (where they can be: a start
after a clean stop, marked ``state/<daemon>.stopped``, does not list the folders that grow
with the jobs) and indexes a folder whose files it claims by rename (the spooler's dump
folder, the result daemon's address folder). :meth:`WatchingDaemon.run` watches that folder
and makes passes until :meth:`WatchingDaemon.request_stop` (from another thread, or a signal
handler: it only sets two events). Between passes it sleeps on an event that the folder
watcher and the stop request set, at most as long as the daemon's timers allow. With a
notifier (systemd), READY=1 follows once the folder is watched, WATCHDOG=1 pings while the
observer threads live, and STOPPING=1 precedes the return.

The daemon says what a pass is (:meth:`WatchingDaemon._pass`: True while there is more to do
at once) and how long it may sleep (:meth:`WatchingDaemon._sleep_s`).

No single item stops the daemon (:mod:`spooler.core.items`): each daemon gives up an item on which
it meets an unexpected exception. A pass that fails all the same (a full disk, a bug outside
any item) is logged with its traceback and tried again after a pause that doubles from
``PASS_RETRY_S`` up to ``PASS_RETRY_MAX_S``; the loop, its systemd watchdog pings and its
stop request go on meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from spooler.core.fsutil import clear_stale_temps, exclusive_lock, fsync_dir, write_atomic
from spooler.core.intake import DumpFolder, DumpWatcher
from spooler.core.jobs import Jobs
from spooler.core.notify import Heartbeat, Notifier
from spooler.core.settings import Folders, Settings
from spooler.core.states import JobState

__all__ = ["WatchingDaemon"]

log = logging.getLogger(__name__)

PASS_RETRY_S = 1.0
PASS_RETRY_MAX_S = 60.0
CLEAN_STOP_SUFFIX = ".stopped"  # state/<lock's stem>.stopped: the daemon's last stop was clean


class WatchingDaemon:
    name = "daemon"  # in the lock's refusal and the log
    lock = "daemon.lock"  # in the state folder
    watching = "files"  # what the folder brings, for the log

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        exclusive: bool = True,
    ) -> None:
        """*exclusive* False: without the tree's lock (a helper process of a daemon that
        holds it, which waits for the helper)."""
        self.settings = settings
        self.clock = clock
        self.wall_clock = wall_clock
        settings.folders.create()
        folder, claimed = self.watched_folders(settings.folders)
        self._lock_fd = (
            exclusive_lock(settings.folders.state / self.lock, self.name) if exclusive else None
        )
        jobs: Jobs | None = None
        try:
            claimed.mkdir(exist_ok=True)
            self.jobs = jobs = Jobs(settings.folders, clock=wall_clock)
            if exclusive:
                stopped_cleanly = self._take_clean_stop(settings.folders)
                self._clear_stale_temps(settings.folders, jobs, everywhere=not stopped_cleanly)
                jobs.publish_unpublished()  # status files a kill left behind their jobs' changes
        except BaseException:
            if jobs is not None:
                jobs.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
            raise
        self.watched = DumpFolder(folder, claimed, clock=clock)
        self.watcher: DumpWatcher | None = None
        self._stop = threading.Event()
        self._next_rescan = float("-inf")

    # -- the watched folder's listing: when due, when the watcher's hints cannot be trusted

    def _look(self, *, now: bool = False) -> int | None:
        """List the watched folder if *now*, if its listing is due (every
        ``intake.rescan_interval_s``: events can be lost), or if the watcher's hints cannot
        be trusted (:meth:`DumpFolder.merge_hints`); returns the files waiting, or None when
        only the hints were taken."""
        if now or self.clock() >= self._next_rescan or not self.watched.merge_hints():
            waiting = self.watched.rescan()
            self._next_rescan = self.clock() + self.settings.intake.rescan_interval_s
            return waiting
        return None

    def _look_soon(self) -> None:
        """The next :meth:`_look` lists the folder."""
        self._next_rescan = float("-inf")

    def _until_look_s(self) -> float:
        """Seconds until the folder's listing is due."""
        return max(0.0, self._next_rescan - self.clock())

    # -- crash safety: the temporary files of writes a kill cut short ----------------------

    def _clean_stop_marker(self, folders: Folders) -> Path:
        """The file :meth:`close` leaves when this daemon stopped cleanly."""
        return folders.state / f"{Path(self.lock).stem}{CLEAN_STOP_SUFFIX}"

    def _take_clean_stop(self, folders: Folders) -> bool:
        """True if the daemon's last run stopped cleanly (:meth:`close`); the mark is removed
        durably before the daemon writes anything, so that a kill from now on leaves none."""
        marker = self._clean_stop_marker(folders)
        try:
            marker.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(marker.parent)
        return True

    def _clear_stale_temps(self, folders: Folders, jobs: Jobs, *, everywhere: bool) -> None:
        """Remove the temporary files of writes a kill cut short, where they can be.

        A temporary file is left only where a process writes atomically
        (:func:`spooler.core.fsutil.write_atomic`, :class:`spooler.core.fsutil.Batch`, the
        BLACS plugin's ``write_hidden``) and was killed in the act; only those whose process
        is gone are removed. Looked at on every start, each small whatever the tree's age:
        the folders whose files move on (``staging``, ``addresses``, ``control`` and its
        subfolders: the gateway's, the spooler's and the plugin's) and the folders
        ``jobs/<id>/`` of the jobs still INITIALIZING (admission is the only writer of a job's
        folder, before its job leaves INITIALIZING; recovery, which admits them again, comes
        after). After a start that did not follow a clean stop of this daemon (a kill, a
        power loss, the first start), also the folders the daemons write into that grow with
        the jobs: ``status``, ``results``, ``quarantine`` (one listing each). Never listed:
        ``processed`` and ``rejected``, which only receive renames, and the folders of ended
        jobs, which nothing writes."""
        folders_listed: list[tuple[Path, int]] = [
            (folders.staging, 0),
            (folders.addresses, 0),
            (folders.control, 1),
        ]
        folders_listed += [
            (folders.jobs / job.job_id, 0) for job in jobs.read.jobs(JobState.INITIALIZING)
        ]
        if everywhere:
            folders_listed += [(folders.status, 0), (folders.results, 0), (folders.quarantine, 0)]
        removed = sum(clear_stale_temps(folder, depth=depth) for folder, depth in folders_listed)
        if removed:
            log.info("removed %d temporary file(s) left by killed processes", removed)

    def _note_clean_stop(self) -> None:
        """Leave the mark of a clean stop (:meth:`_take_clean_stop`): every write of this
        daemon is finished, so its next start need not look for its temporary files in the
        folders that grow with the jobs. A mark that cannot be written costs the next start
        that look, nothing else."""
        marker = self._clean_stop_marker(self.settings.folders)
        try:
            write_atomic(marker, b"")
        except OSError as exc:
            log.warning("%s: cannot note the clean stop in %s: %s", self.name, marker, exc)

    def close(self) -> None:
        """Stop watching, close the store, note the clean stop and release the tree's lock
        (a subclass ends its own writers first, then calls this)."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.jobs.close()
        if self._lock_fd is not None:
            try:
                self._note_clean_stop()
            finally:
                os.close(self._lock_fd)

    def request_stop(self) -> None:
        """Ask :meth:`run` to return after the current pass (safe from a signal handler)."""
        self._stop.set()
        self.watched.wake.set()

    def watcher_alive(self) -> bool:
        return self.watcher is not None and self.watcher.alive()

    def run(
        self, *, on_ready: Callable[[], None] | None = None, notifier: Notifier | None = None
    ) -> None:
        """Run until :meth:`request_stop`; *on_ready* is called once the folder is watched."""
        notifier = notifier or Notifier(None)
        heartbeat = Heartbeat(notifier, self.watcher_alive, self.clock)
        intake = self.settings.intake
        polling = intake.observer == "polling"
        self.watcher = DumpWatcher(
            self.watched, polling=polling, polling_interval_s=intake.polling_interval_s
        )
        self.watcher.start()
        self._prepare()
        if on_ready is not None:
            on_ready()
        notifier.ready(f"watching {self.watched.folder}")
        log.info("%s: watching %s for %s", self.name, self.watched.folder, self.watching)
        look = False
        retry_s = PASS_RETRY_S
        while not self._stop.is_set():
            heartbeat.beat()
            # Cleared before the pass, not after: a file that arrives during the pass must
            # wake the sleep below (cleared after, it waited for the next rescan).
            self.watched.wake.clear()
            try:
                more = self._pass(look)
            except Exception:
                log.exception("%s: a pass failed; trying again in %.0f s", self.name, retry_s)
                self._stop.wait(min(retry_s, heartbeat.seconds_left()))
                retry_s = min(2 * retry_s, PASS_RETRY_MAX_S)
                look = True
                continue
            retry_s = PASS_RETRY_S
            if more:
                look = False
                continue
            if self._stop.is_set():
                break
            sleep_s = min(self._sleep_s(), heartbeat.seconds_left())
            look = self.watched.idle(sleep_s, polling=polling)
        notifier.stopping()
        log.info("%s: stopping, the current pass is finished", self.name)

    @staticmethod
    def watched_folders(folders: Folders) -> tuple[Path, Path]:
        """The folder watched, and where its files go when claimed."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """What to do once the folder is watched, before the daemon says it is ready."""

    def _pass(self, look: bool) -> bool:
        """One pass; True when there is more to do at once. *look*: list the folder now
        (events may have been held back)."""
        raise NotImplementedError

    def _sleep_s(self) -> float:
        """How long the loop may sleep when nothing wakes it."""
        raise NotImplementedError
