"""The result daemon: address files to analysed, archived shots and a result per job.

``ResultDaemon.step()`` does one pass:

1. what the executors have finished since the last pass (:mod:`result.collecting`): each
   analysed work copy is verified against its task's checksum and renamed into its place
   on the store (SDS); then, for all of them in one transaction, the ledger records them
   archived (with their memory entry, lyse's DataFrame row and the version of the
   routines), after which the local copies are removed and the address files filed to
   ``processed`` (:mod:`result.placing`, :mod:`result.filing`);
2. address files claimed before and not finished (a crash, a store that was away), then
   new ones (oldest first, claimed by rename like the spooler's jobs), while the executor
   has room (:mod:`result.intake`): each read and believed (:mod:`result.addresses`) is
   recorded ``received`` and its shot submitted as a task (:mod:`result.task`) to an
   executor (:mod:`result.executing`);
3. every running job is checked (:mod:`result.finishing`).

The daemon is the one writer of the ledger, the job states and the final names on the
store; a task writes only its own work copy. Shots finish in whatever order the workers
run them; the ledger, the CSVs and the result JSON are in shot order. Where each shot is in
the meantime is :class:`result.inhand.InHand`.

No single shot stops the daemon. A shot on which a process died (the daemon itself with
``inline``, a worker with ``processes``: the pool knows which shot its worker had) is
counted (:mod:`result.deaths`) and, after ``limits.item_deaths_max``, quarantined
(:mod:`result.giving_up`); with ``inline`` a shot on which the daemon died is analysed next in
a process of its own, where its crash is seen for what it is. A store that is unreachable or
full (or analysis workers that cannot start) makes the daemon wait and retry with back-off,
keeping everything local (:mod:`result.outage`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from result.addresses import BadAddress
from result.analysis import load_routines
from result.archive import StoreUnavailable
from result.collecting import Collector
from result.deaths import ShotDeaths
from result.executing import Executors
from result.executors import Executor, WorkersUnavailable
from result.filing import AddressFiles
from result.finishing import JobFinisher
from result.giving_up import GivingUp
from result.inhand import InHand
from result.intake import Intake
from result.killlock import release_leaked
from result.outage import Outage
from result.parts import Parts
from result.placing import Placing
from spooler.core.backends import get_backend
from spooler.core.items import DeathCounter, Quarantine
from spooler.core.labprofile import activate_if_set
from spooler.core.settings import Folders, Settings
from spooler.core.store.shots import ShotRow
from spooler.core.watching import WatchingDaemon

__all__ = ["BadAddress", "ResultDaemon"]

log = logging.getLogger(__name__)

WORKERS_READY_S = 60.0  # at start, before the daemon says it is ready
WORK = "work"  # the suffix of the daemon's work copies (result.task.work_name)


class ResultDaemon(WatchingDaemon):
    name = "result daemon"
    lock = "result.lock"
    watching = "finished shots"

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        exclusive: bool = True,
    ) -> None:
        super().__init__(settings, clock=clock, wall_clock=wall_clock, exclusive=exclusive)
        self.addresses = self.watched
        self.claimed = settings.folders.result_claimed
        # work copies of labspool before the executors (now beside their place on the store)
        self.work = settings.folders.state / "result-work"
        self.work.mkdir(exist_ok=True)
        for stale in self.work.iterdir() if exclusive else ():
            stale.unlink()  # a half-done analysis; its shot is still where it came from
        activate_if_set(settings.lab.labscript_profile)
        self.deaths = DeathCounter(self.jobs.store, "result", settings.limits.item_deaths_max)
        self.quarantine = Quarantine(
            settings.folders.quarantine, "result daemon", store=self.jobs.store
        )
        self.routines = settings.result.routines
        load_routines(self.routines)  # a routine that cannot be loaded is a ConfigError now
        self.memory_routine = settings.result.memory_routine_name()
        self.finisher = JobFinisher(
            settings, self.jobs, get_backend(settings.backend), wall_clock=wall_clock
        )
        # the parts, each a step of a shot's way
        self.outage = Outage(settings.result, self.jobs, clock)
        self.shots = InHand()
        self.executors = Executors(
            settings.result.executor, self.watched.wake, scratch=settings.folders.state
        )
        self.placing = Placing(WORK, replacing=False, leftovers=self._copies_left)
        self.files = AddressFiles(self.claimed, settings.folders.processed, self.jobs)
        deaths = ShotDeaths(self.deaths)
        self.giving_up = GivingUp(
            self.jobs, self.quarantine, deaths, self.shots, self.placing, settings.folders
        )
        parts = Parts(
            self.jobs, self.shots, self.executors, deaths, self.giving_up, self.files, self.placing
        )
        self.intake = Intake(settings, parts, self.addresses, room=self._room, rescan=self._look)
        self.collector = Collector(parts)

    # -- the executors ------------------------------------------------------------------

    @property
    def executor(self) -> Executor:
        """The configured executor, started with the first shot."""
        return self.executors.configured()

    def executor_capacity(self) -> int:
        return self.executors.capacity()

    def _room(self) -> int:
        return self.executor_capacity() - len(self.shots.flights)

    def _copies_left(self, row: ShotRow) -> bool:
        return self.shots.copies_left(row.address, dask=self.executors.dask)

    def close(self) -> None:
        self.executors.close()
        super().close()

    # -- the loop -----------------------------------------------------------------------

    def step(self) -> int:
        """One pass; returns the number of shots finished (archived or given up)."""
        with self.jobs.publishing_once():  # each job's status file once a pass
            return self._step()

    def _step(self) -> int:
        if self.outage.waiting():
            return 0
        done = 0
        try:
            done += self.collector.collect()
            self.intake.admit()
            done += self.collector.collect()  # what ran at once (inline)
        except StoreUnavailable as exc:
            release_leaked()  # h5_lock's, after zlock failed (no shot is open here)
            if isinstance(exc, WorkersUnavailable):
                self.executors.drop_lost(self.shots)  # a lost Dask client is made anew
            self.outage.met(exc)
            return done
        self.outage.passed(done)
        self.finisher.check_all()
        return done

    def run_once(self) -> int:
        """Process everything waiting, then return (a store that is away ends the pass)."""
        self._warm_up()
        total = 0
        self._look_soon()
        while True:
            done = self.step()
            total += done
            if self.outage.waiting():
                return total
            if done == 0 and not self.shots.busy():
                return total
            if done == 0:
                self.watched.wake.wait(1.0)
                self.watched.wake.clear()

    @staticmethod
    def watched_folders(folders: Folders) -> tuple[Path, Path]:
        return folders.addresses, folders.result_claimed

    def _prepare(self) -> None:
        self._warm_up()

    def _warm_up(self) -> None:
        """Start the workers (``inline``: import the labscript suite) now, not with the first
        shot: a process killed while it imports (a second or more) must not count as a death
        on that shot, and the first shot should not wait. Only with the lab's own profile
        (``lab.labscript_profile``): with the user's, importing the suite may start servers
        (zlock) of that profile, which is left to the first shot."""
        if self.settings.lab.labscript_profile is None:
            return
        import lyse.dataframe_utilities  # noqa: F401  (the finisher's, now: seconds to import)

        try:
            ready = self.executor.wait_ready(WORKERS_READY_S)
        except WorkersUnavailable as exc:  # a scheduler that does not answer: tried later
            log.warning("the analysis workers are unavailable; shots wait for them: %s", exc)
            return
        if not ready:
            log.warning(
                "the analysis workers (%s) are not all ready after %.0f s; shots wait for them",
                self.executor.kind,
                WORKERS_READY_S,
            )

    def _pass(self, look: bool) -> bool:
        if look:
            self._look_soon()  # list the folder ourselves now
        done = self.step()
        shots = self.shots
        more = len(self.addresses) or shots.unread or (self._room() > 0 and shots.waiting)
        return bool(done or (more and not self.outage.waiting()))

    def _sleep_s(self) -> float:
        if self.outage.waiting():
            return self.outage.retry_at - self.clock()  # the store is away: wait for the retry
        sleep_s = self._until_look_s()
        if self.shots.flights:
            sleep_s = min(sleep_s, 1.0)  # the executors' time-outs; outcomes wake it
        return sleep_s
