"""The result daemon: address files to analysed, archived shots and a result per job.

``ResultDaemon.step()`` does one pass:

1. what the executor (:mod:`result.executors`) has finished since the last pass: each
   analysed work copy is verified against its task's checksum and renamed into its place
   on the store (SDS); then, for all of them in one transaction, the ledger records them
   archived (with their memory entry, lyse's DataFrame row and the version of the
   routines), after which the local copies are removed and the address files filed to
   ``processed``;
2. address files claimed before and not finished (a crash, a store that was away), then
   new ones (oldest first, claimed by rename like the spooler's jobs), while the executor
   has room: each read and believed (:mod:`result.addresses`) is recorded ``received`` and
   its shot submitted as a task (:mod:`result.task`);
3. every running job is checked (:mod:`result.finishing`).

The daemon is the one writer of the ledger, the job states and the final names on the
store; a task writes only its own work copy. Shots finish in whatever order the workers
run them; the ledger, the CSVs and the result JSON are in shot order.

No single shot stops the daemon. A shot on which a process died (the daemon itself with
``inline``, a worker with ``processes``: the pool knows which shot its worker had) is
counted (:class:`spooler.core.items.DeathCounter`) and, after ``limits.item_deaths_max``,
quarantined; with ``inline`` a shot on which the daemon died is analysed next in a process of
its own, where its crash is seen for what it is. A store that is unreachable or full (or
analysis workers that cannot start) makes the daemon wait and retry with back-off, keeping
everything local.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from result import task as tasks
from result.addresses import Address, BadAddress, read_address
from result.analysis import load_routines
from result.archive import StoreUnavailable, place
from result.executors import Executor, Finished, IsolatedExecutor, WorkersUnavailable, make_executor
from result.finishing import JobFinisher
from result.killlock import release_leaked
from result.ledger import Ledger, ShotRow
from result.task import ShotOutcome, ShotTask, work_copies
from spooler.core.backends import get_backend
from spooler.core.errors import describe_exception
from spooler.core.fsutil import fsync_dir, is_environment_error
from spooler.core.items import DeathCounter, Quarantine
from spooler.core.labprofile import activate_if_set
from spooler.core.logs import for_job
from spooler.core.names import escaped
from spooler.core.settings import Folders, Settings
from spooler.core.states import JobState
from spooler.core.store import Transaction
from spooler.core.watching import WatchingDaemon

__all__ = ["BadAddress", "ResultDaemon"]

log = logging.getLogger(__name__)

KIND = "shot"  # the DeathCounter's kind of item: an address file and the shot it names
KIND_SEEN = "shot, seen"  # deaths of a process analysing the shot alone, seen by the daemon
ISOLATED_TIMEOUT_S = 20.0  # within systemd's watchdog interval (60 s; pings every 30 s)
WORKERS_READY_S = 60.0  # at start, before the daemon says it is ready
WORK = "work"  # the suffix of the daemon's work copies (result.task.work_name)


def _died(daemon: int, seen: int, last: str | None) -> str:
    parts = []
    if daemon:
        parts.append(f"the result daemon died {daemon} time(s) while handling this shot")
    if seen:
        how = f" (last: {last})" if last else ""
        parts.append(f"a process analysing it alone died {seen} time(s){how}")
    return (
        f"{' and '.join(parts)}: a damaged file that crashes a library, or an analysis routine "
        "that ends the process; given up without another try"
    )


@dataclass
class _Flight:
    """A shot submitted to an executor."""

    path: Path  # its claimed address file
    task: ShotTask
    executor: Executor


@dataclass
class _Placed:
    """A shot whose analysed copy is in its place on the store, to be recorded."""

    path: Path
    row: ShotRow
    outcome: ShotOutcome
    target: Path


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
        self.ledger = Ledger(self.jobs.store)
        self.deaths = DeathCounter(self.jobs.store, "result", settings.limits.item_deaths_max)
        self.quarantine = Quarantine(
            settings.folders.quarantine, "result daemon", store=self.jobs.store
        )
        self._unreachable: str | None = None  # the store's outage being waited out
        self.routines = settings.result.routines
        load_routines(self.routines)  # a routine that cannot be loaded is a ConfigError now
        self.memory_routine = settings.result.memory_routine_name()
        self.finisher = JobFinisher(
            settings, self.jobs, get_backend(settings.backend), wall_clock=wall_clock
        )
        self._retry_at = float("-inf")
        self._delay_s = settings.result.archive_retry_interval_s
        self._executor: Executor | None = None
        self._isolated: Executor | None = None
        self._flights: dict[str, _Flight] = {}
        self._waiting: dict[str, Path] = {}  # received (ledger row), not yet submitted
        self._unread: list[Path] = []  # claimed address files to read in the next pass
        self._last_death: str | None = None  # how the last process died on a shot
        self._submitted: set[str] = set()  # shots submitted by this daemon (not yet done)
        self._again: set[str] = set()  # of those, the ones that may have left a work copy
        # Shots Dask gave up (KilledWorker): maybe innocent, on workers another shot killed.
        # Each is analysed alone, here, where a death is known to be its own (shot -> why).
        self._suspects: dict[str, str] = {}

    # -- the executors ------------------------------------------------------------------

    @property
    def executor(self) -> Executor:
        """The configured executor, started with the first shot."""
        if self._executor is None:
            self._executor = make_executor(
                self.settings.result.executor,
                self.watched.wake,
                scratch=self.settings.folders.state,
            )
            log.info(
                "analysis runs %s: %s",
                self._executor.kind,
                ", ".join(self._executor.workers()) or "no worker yet",
            )
        return self._executor

    def _isolation(self) -> Executor:
        if self._isolated is None:
            self._isolated = IsolatedExecutor(self.watched.wake, timeout_s=ISOLATED_TIMEOUT_S)
        return self._isolated

    def _drop_executor(self) -> None:
        """Close a Dask executor whose scheduler is lost; its shots wait for the next one.
        (A pool of worker processes mends itself: :meth:`result.pool.WorkerPool.retry`.)"""
        executor = self._executor
        if executor is None or executor.kind != "dask":
            return
        self._executor = None
        for name, flight in list(self._flights.items()):
            if flight.executor is executor:
                del self._flights[name]
                self._waiting[name] = flight.path
                self._again.add(name)
        with contextlib.suppress(Exception):  # it is broken already
            executor.close()

    def close(self) -> None:
        for executor in (self._executor, self._isolated):
            if executor is not None:
                executor.close()
        self._executor = self._isolated = None
        super().close()

    # -- the loop -----------------------------------------------------------------------

    def step(self) -> int:
        """One pass; returns the number of shots finished (archived or given up)."""
        with self.jobs.publishing_once():  # each job's status file once a pass
            return self._step()

    def _step(self) -> int:
        if self.clock() < self._retry_at:
            return 0
        done = 0
        try:
            done += self._collect()
            self._admit()
            done += self._collect()  # what ran at once (inline)
        except StoreUnavailable as exc:
            release_leaked()  # h5_lock's, after zlock failed (no shot is open here)
            if isinstance(exc, WorkersUnavailable):
                self._drop_executor()  # a lost Dask client is made anew, not reused
            log.warning(
                "waiting for the store, zlock or the analysis workers (next try in %.1f s): %s",
                self._delay_s,
                exc,
            )
            self._retry_at = self.clock() + self._delay_s
            self._delay_s = min(
                2 * self._delay_s, self.settings.result.archive_retry_interval_max_s
            )
            if self._unreachable is None:  # the outage begins: tell someone, once
                self._unreachable = str(exc)
                with self.jobs.change() as tx:
                    tx.notify(
                        "store_unreachable",
                        "The result daemon waits for the store",
                        f"{exc}\nShots stay local and are archived once it is back.\n"
                        "What to do: make the store (SDS), zlock or the analysis workers "
                        "reachable again; nothing else is needed.",
                    )
            return done
        if self._unreachable is not None and done:
            self._unreachable = None
            with self.jobs.change() as tx:
                tx.notify(
                    "store_back",
                    "The result daemon reaches the store again",
                    "Shots are archived again.\nWhat to do: nothing.",
                )
        if done:  # shots went through: the next outage starts its back-off afresh
            self._delay_s = self.settings.result.archive_retry_interval_s
        self.finisher.check_all()
        return done

    def run_once(self) -> int:
        """Process everything waiting, then return (a store that is away ends the pass)."""
        self._warm_up()
        total = 0
        self._next_rescan = float("-inf")
        while True:
            done = self.step()
            total += done
            if self.clock() < self._retry_at:
                return total
            if done == 0 and not (self._flights or self._waiting or self._unread):
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
            self._next_rescan = self.clock()  # list the folder ourselves now
        done = self.step()
        more = len(self.addresses) or self._unread or (self._room() > 0 and self._waiting)
        return bool(done or (more and self.clock() >= self._retry_at))

    def _sleep_s(self) -> float:
        if self.clock() < self._retry_at:
            return self._retry_at - self.clock()  # the store is away: wait for the retry
        sleep_s = max(0.0, self._next_rescan - self.clock())
        if self._flights:
            sleep_s = min(sleep_s, 1.0)  # the executors' time-outs; outcomes wake it
        return sleep_s

    # -- taking shots in ----------------------------------------------------------------

    def _room(self) -> int:
        return self.executor_capacity() - len(self._flights)

    def executor_capacity(self) -> int:
        if self._executor is None:
            return self.settings.result.executor.window()  # (started with the first shot)
        return self._executor.capacity

    def _admit(self) -> None:
        """Claimed address files not in hand (a crash, a retry), then new ones, into the
        executor while it has room."""
        for executor in (self._executor, self._isolated):
            if executor is not None:
                executor.tick()
        unread = {path.name: path for path in self._unread}
        self._unread = []
        if not self._flights:
            for name in sorted(os.listdir(self.claimed)):
                if name not in self._waiting and name not in unread:
                    unread[name] = self.claimed / name
                    if name not in self._submitted:
                        self._again.add(name)  # left by a daemon before this one
        if self.clock() >= self._next_rescan or not self.addresses.merge_hints():
            self.addresses.rescan()
            self._next_rescan = self.clock() + self.settings.intake.rescan_interval_s
        # Every address is received at once, whatever the executor's room: the shots made
        # are what the spooler's look-ahead goes by, and a slow analysis must not idle the
        # machine. Only the tasks in flight are bounded.
        for candidate in self.addresses.take(self.settings.result.batch_max_shots):
            claim = self.addresses.claim(candidate)
            if claim is not None:
                unread[claim.path.name] = claim.path
        new: list[tuple[Path, Address]] = []
        done_before: list[str] = []  # archived or given up before a crash: only to be filed
        for path in unread.values():
            row = Ledger.get(self.jobs.read, path.name)
            if row is not None:
                self._waiting[path.name] = path
                if row.state in ("archived", "quarantined"):
                    done_before.append(path.name)
                continue
            try:
                new.append((path, self._read(path)))
            except BadAddress as exc:
                self._refuse(path, str(exc))
        if new:
            with self.jobs.change() as tx:  # from here on a death is the job's shot's
                for path, address in new:
                    Ledger.claim(
                        tx,
                        path.name,
                        job_id=address.job_id,
                        attempt=address.attempt,
                        experiment=address.experiment,
                        shot_index=address.shot_index,
                        local_path=str(address.shot),
                    )
                for job_id, attempt in {(a.job_id, a.attempt) for _, a in new}:
                    self._count_made(tx, job_id, attempt)
            for path, _ in new:
                self._waiting[path.name] = path
        # what a crash left done is finished first and needs no room: before the job's end
        # is checked this pass, so a job never ends with a local copy still to remove
        first = set(done_before)
        for name in done_before + [n for n in self._waiting if n not in first]:
            if self._room() <= 0 and name not in first:
                break
            path = self._waiting.pop(name)
            try:
                self._start(path)
            except StoreUnavailable:
                self._waiting[name] = path
                raise
            except Exception as exc:  # one shot must not stop the daemon
                if is_environment_error(exc):
                    # the shot folder read-only or full: the machine's fault, not the shot's
                    self._waiting[name] = path
                    raise StoreUnavailable(f"the shot folder: {describe_exception(exc)}") from exc
                for_job(log, self._job_of(name)).exception("internal error while taking %s", name)
                reason = f"internal error while taking the shot: {describe_exception(exc)}"
                self._give_up(path, reason)

    def _start(self, path: Path) -> None:
        """Submit the shot of a claimed address file (its ledger row made), or finish what a
        crash left of it."""
        name = path.name
        row = Ledger.get(self.jobs.read, name)
        if row is not None and row.state in ("archived", "quarantined"):
            # Done before: the same address again (a crash before it was filed), or a new
            # shot whose address has an old one's name (a requeued job, a late repeat).
            try:
                shot = str(self._read(path).shot)
            except BadAddress:
                shot = row.local_path
            if shot != row.local_path:
                self._unread.append(self._rename_claimed(path))  # a new shot: read next pass
                return
            if row.state == "quarantined":
                self._quarantine_files(row, path)  # given up before a crash: finish it
            else:
                folder = self._tidy(row)
                if folder is not None:
                    fsync_dir(folder)
                self._file_addresses([path])
            return
        if row is None:  # its row is gone (refused meanwhile): read again next pass
            self._unread.append(path)
            return
        read = self.jobs.read
        daemon_deaths = self.deaths.deaths(read, KIND, name)
        seen_deaths = self.deaths.deaths(read, KIND_SEEN, name)
        limit = self.settings.limits.item_deaths_max
        if seen_deaths and daemon_deaths + seen_deaths >= limit:
            reason = _died(daemon_deaths, seen_deaths, self._last_death)
            if name in self._suspects:
                reason = f"{self._suspects[name]}; then {reason}"
            self._give_up(path, reason)
            return
        local, target = Path(row.local_path), self._target(row)
        assert row.job_id and row.experiment and row.attempt is not None
        assert row.shot_index is not None
        if not local.exists() and not target.exists():
            for_job(log, row.job_id).error(
                "shot %s is gone and not on the store; its address file is kept", local
            )
            self._file_addresses([path], suffix=".missing")
            return
        task = ShotTask(
            address=name,
            source=str(local if local.exists() else target),
            target=str(target),
            routines=self.routines,
            memory_routine=self.memory_routine,
            expect=(row.job_id, row.experiment, row.shot_index, row.attempt),
            names=self.settings.lab.globals,
            suffix=WORK,
            analyse=local.exists(),  # else: archived before a crash, only to be recorded
        )
        executor = self.executor
        if name in self._suspects:
            executor = self._isolation()
            executor.submit(task)
            self._flights[name] = _Flight(path, task, executor)
            self._again.add(name)
            return
        if executor.runs_here:
            if daemon_deaths:
                for_job(log, row.job_id).warning(
                    "the daemon died on %s before: analysing it in a process of its own", name
                )
                executor = self._isolation()
                executor.submit(task)
                self._flights[name] = _Flight(path, task, executor)
                self._again.add(name)
                return
            self.deaths.started(KIND, name)  # a death of the daemon now is the shot's
            executor.submit(task)  # it runs now, in this process
            self._flights[name] = _Flight(path, task, executor)
            self.deaths.ended(KIND, name)
            return
        executor.submit(task)  # (the executor's trouble raises WorkersUnavailable: it waits)
        self._flights[name] = _Flight(path, task, executor)
        if name in self._submitted:
            self._again.add(name)  # an earlier run's work copy may be left: tidied after
        self._submitted.add(name)

    # -- what comes back ----------------------------------------------------------------

    def _collect(self) -> int:
        finished: list[Finished] = []
        for executor in (self._executor, self._isolated):
            if executor is not None:
                finished.extend(executor.finished())
        placed: list[_Placed] = []
        unavailable: str | None = None
        given_up = 0
        for item in finished:
            flight = self._flights.pop(item.key, None)
            if flight is None:
                continue  # not ours any more (given up meanwhile)
            try:
                result = self._receive(flight, item)
            except _Taken as exc:
                self._give_up(flight.path, str(exc))
                given_up += 1
                continue
            except StoreUnavailable as exc:
                self._waiting[flight.path.name] = flight.path
                unavailable = str(exc)
                continue
            except Exception as exc:
                if is_environment_error(exc):  # a disk's fault, not the shot's: it waits
                    self._waiting[flight.path.name] = flight.path
                    unavailable = describe_exception(exc)
                    continue
                for_job(log, self._job_of(item.key)).exception("internal error on %s", item.key)
                self._give_up(
                    flight.path,
                    f"internal error while archiving the shot: {describe_exception(exc)}",
                )
                given_up += 1
                continue
            if isinstance(result, _Placed):
                placed.append(result)
            else:
                given_up += result
            if result:  # finished: not to be submitted again by this daemon
                self._submitted.discard(item.key)
                self._suspects.pop(item.key, None)
        if placed:
            self._record(placed)
        if unavailable is not None:
            raise StoreUnavailable(unavailable)
        return len(placed) + given_up

    def _receive(self, flight: _Flight, item: Finished) -> _Placed | int:
        """One finished task: its shot placed on the store (to be recorded), or handled
        otherwise (returns 1 if the shot is finished so, 0 if it waits again)."""
        path, name = flight.path, item.key
        jlog = for_job(log, self._job_of(name))
        if item.death is not None:
            with self.jobs.change() as tx:  # the death was seen: it is the shot's
                self.deaths.begin(tx, KIND_SEEN, name)
            self._last_death = item.death
            jlog.error("the process analysing %s died: %s", name, item.death)
            self._waiting[name] = path
            return 0
        if item.retry is not None:
            jlog.warning("the executor lost the task of %s (%s): submitted again", name, item.retry)
            self._waiting[name] = path
            return 0
        if item.given_up is not None:
            if flight.executor is not self._isolated and name not in self._suspects:
                jlog.warning(
                    "%s: %s; analysing it alone, here, to tell whether it is the shot's doing",
                    name,
                    item.given_up,
                )
                self._suspects[name] = item.given_up
                self._waiting[name] = path
                return 0
            self._give_up(path, item.given_up)
            return 1
        if item.error is not None:
            jlog.error("internal error while analysing %s: %s", name, item.error)
            self._give_up(path, f"internal error while analysing the shot: {item.error}")
            return 1
        outcome = item.outcome
        assert outcome is not None
        row = Ledger.get(self.jobs.read, name)
        if row is None or row.state not in ("received", "claimed", "analysed"):
            self._discard(outcome)  # handled meanwhile
            return 0
        if outcome.kind == tasks.UNAVAILABLE:
            self._discard(outcome)
            raise StoreUnavailable(outcome.error or "the store is unavailable")
        if outcome.kind == tasks.REFUSED:
            with self.jobs.change() as tx:
                self._forget_deaths(tx, name)
                Ledger.forget(tx, name)
                if row.job_id and row.attempt is not None:
                    self._count_made(tx, row.job_id, row.attempt)
            self._refuse(path, outcome.error or "refused")
            return 1
        if outcome.kind == tasks.DAMAGED:
            self._give_up(path, f"not readable as a labscript shot: {outcome.error}")
            return 1
        target = Path(flight.task.target)
        if outcome.kind != tasks.ON_STORE and not self._place(outcome, target, row, path):
            self._waiting[name] = path
            return 0
        return _Placed(path, row, outcome, target)

    def _place(self, outcome: ShotOutcome, target: Path, row: ShotRow, path: Path) -> bool:
        """Verify the outcome's work copy and rename it to *target*; False: analyse again."""
        assert outcome.work is not None
        work = Path(outcome.work)
        owner = Ledger.archived_at(self.jobs.read, str(target))
        if owner is not None and owner != row.address:
            with contextlib.suppress(OSError):
                work.unlink(missing_ok=True)
            raise _Taken(owner)
        # a copy of ours at target that the ledger has not recorded (a crash) is replaced
        if place(work, target, (outcome.size, outcome.sha256)):
            return True
        for_job(log, row.job_id or "-").error(
            "the work copy %s is gone or does not verify; the shot is analysed again", work.name
        )
        return False

    def _record(self, placed: list[_Placed]) -> None:
        """Shots in their places on the store: durable, recorded, then tidied."""
        for folder in {p.target.parent for p in placed}:
            fsync_dir(folder)
        errors: list[tuple[str, int, str]] = []
        with self.jobs.change() as tx:
            for item in placed:
                outcome, row = item.outcome, item.row
                assert outcome.size is not None and outcome.sha256 and outcome.frame
                Ledger.archived(
                    tx,
                    row.address,
                    sds_path=str(item.target),
                    size=outcome.size,
                    sha256=outcome.sha256,
                    frame=outcome.frame,
                    memory=outcome.memory,
                    error=outcome.error,
                    routines=outcome.version or None,
                )
                self._forget_deaths(tx, row.address)
                if outcome.kind == tasks.FAILED and row.job_id and row.attempt is not None:
                    errors.append((row.job_id, row.attempt, outcome.error or "analysis failed"))
            for job_id, attempt in {(r.row.job_id, r.row.attempt) for r in placed}:
                job = tx.get(job_id) if job_id else None
                if job is not None and job.attempt == attempt:
                    tx.set_counts(
                        job.job_id, shots_done=Ledger.archived_count(tx, job.job_id, attempt)
                    )
            for job_id, attempt, error in errors:
                job = tx.get(job_id)
                if job is not None and job.state is JobState.RUNNING and job.attempt == attempt:
                    tx.transition(
                        job_id, JobState.ERROR, note="Analysis failed", error_message=error
                    )
        for job_id, _, error in errors:
            for_job(log, job_id).error("%s", error)
        for item in placed:
            job = self.jobs.read.get(item.row.job_id) if item.row.job_id else None
            if job is None or job.attempt != item.row.attempt or job.state is not JobState.RUNNING:
                for_job(log, item.row.job_id or "-").warning(
                    "shot %s belongs to no running job; archived at %s",
                    Path(item.row.local_path).name,
                    item.target,
                )
        tidied = {self._tidy(item.row) for item in placed}
        for local_folder in tidied:
            if local_folder is not None:
                fsync_dir(local_folder)
        self._file_addresses([p.path for p in placed])

    def _tidy(self, row: ShotRow) -> Path | None:
        """After a shot is archived: its local copy and any work copy left by other runs
        removed; returns the local copy's folder, to be synced (None: nothing removed)."""
        local = Path(row.local_path)
        self._remove_work_copies(row)
        if not local.exists():
            return None
        local.unlink()
        return local.parent

    def _remove_work_copies(self, row: ShotRow, *, always: bool = False) -> None:
        """Work copies of the shot's earlier tasks (a killed worker or daemon, a store that
        failed): removed if the store lets them be. Looked for only for a shot submitted
        more than once by this daemon, taken up after a restart, or given up, or with Dask
        (which runs a task again on its own when a worker dies)."""
        dask = self._executor is not None and self._executor.kind == "dask"
        if not (always or dask or row.address in self._again):
            return
        with contextlib.suppress(OSError):
            for leftover in work_copies(self._target(row), WORK):
                leftover.unlink(missing_ok=True)
        self._again.discard(row.address)

    def _discard(self, outcome: ShotOutcome) -> None:
        if outcome.work is not None:
            with contextlib.suppress(OSError):
                Path(outcome.work).unlink(missing_ok=True)

    def _forget_deaths(self, tx: Transaction, name: str) -> None:
        """The shot is done with (archived, refused, given up): its deaths are forgotten."""
        self.deaths.end(tx, KIND, name)
        self.deaths.end(tx, KIND_SEEN, name)

    @staticmethod
    def _count_made(tx: Transaction, job_id: str, attempt: int) -> None:
        """The job's count of shots made: what the spooler's look-ahead goes by."""
        job = tx.get(job_id)
        if job is not None and job.attempt == attempt:
            tx.set_counts(job_id, shots_made=Ledger.received_count(tx, job_id, attempt))

    # -- shots given up -----------------------------------------------------------------

    def _job_of(self, address: str) -> str:
        row = Ledger.get(self.jobs.read, address)
        return (row.job_id if row is not None else None) or "-"

    def _read(self, address_path: Path) -> Address:
        return read_address(
            address_path,
            self.jobs.read,
            self.settings.folders,
            max_bytes=self.settings.limits.address_file_max_bytes,
        )

    def _refuse(self, address_path: Path, reason: str) -> None:
        """An address that is not believed: quarantined; the file it names is not touched."""
        log.error("refused the address file %s: %s", escaped(address_path.name), reason)
        self.quarantine.put(address_path, f"refused: {reason}")

    def _give_up(self, address_path: Path, reason: str) -> None:
        """Give up a shot: the address file and the shot (if the ledger has taken it, so it is
        known to be the job's own file) go to the quarantine folder, kept; the ledger marks it
        quarantined, and its job ends ERROR once its other shots are archived."""
        name = address_path.name
        self._suspects.pop(name, None)
        row = Ledger.get(self.jobs.read, name)
        if row is None:
            self._refuse(address_path, reason)
            return
        jlog = for_job(log, row.job_id or "-")
        if row.state in ("archived", "quarantined"):
            # The shot is safe on the store (or given up before): only the address is left.
            jlog.error("gave up the address file %s after its shot: %s", name, reason)
            if address_path.exists():
                self.quarantine.put(address_path, reason, job_id=row.job_id)
            return
        with self.jobs.change() as tx:
            Ledger.quarantined(tx, name, error=reason)
            self._forget_deaths(tx, name)
        quarantined = Ledger.get(self.jobs.read, name)
        assert quarantined is not None
        self._quarantine_files(quarantined, address_path)

    def _quarantine_files(self, row: ShotRow, address_path: Path) -> None:
        """Move a given-up shot and its address file to the quarantine folder (again after a
        crash: the ledger said quarantined first)."""
        local = Path(row.local_path)
        self._remove_work_copies(row, always=True)
        shot_name = local.name if local.exists() else f"{row.address}.h5"
        reason = row.error or "given up"
        reason_file = self.quarantine.put(
            local if local.exists() else None,
            reason,
            name=f"{row.job_id}__{shot_name}",
            job_id=row.job_id,
            files=(address_path,) if address_path.exists() else (),
            extra={
                "experiment": row.experiment,
                "shot_index": row.shot_index,
                "attempt": row.attempt,
                "shot": str(local),
            },
        )
        with self.jobs.change() as tx:
            Ledger.quarantine_place(tx, row.address, str(reason_file))
        for_job(log, row.job_id or "-").error(
            "quarantined the shot %s: %s (see %s)", local.name, reason, reason_file
        )

    def _rename_claimed(self, address_path: Path) -> Path:
        """A claimed address file under a name the ledger has not seen."""
        n = 1
        while True:
            candidate = address_path.with_name(f"{address_path.stem}.{n}{address_path.suffix}")
            if not candidate.exists() and Ledger.get(self.jobs.read, candidate.name) is None:
                os.rename(address_path, candidate)
                fsync_dir(candidate.parent)
                return candidate
            n += 1

    def _target(self, row: ShotRow) -> Path:
        job = row.job_id or "unattributed"
        experiment = row.experiment or "unknown"
        return self.settings.folders.stored_shot(job, experiment, Path(row.local_path).name)

    def _file_addresses(self, paths: list[Path], suffix: str = "") -> None:
        """Address files of finished shots to ``processed`` (two folder syncs in all)."""
        moved = False
        processed = self.settings.folders.processed
        for path in paths:
            if not path.exists():
                continue
            target = processed / (path.name + suffix)
            n = 1
            while target.exists():
                target = processed / f"{path.name}{suffix}.{n}"
                n += 1
            os.rename(path, target)
            moved = True
        if moved:
            fsync_dir(processed)
            fsync_dir(self.claimed)


class _Taken(Exception):
    """Another shot is archived at the place this one would go (never replaced)."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"another shot ({owner}) is archived at its place on the store")
