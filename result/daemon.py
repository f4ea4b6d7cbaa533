"""The result daemon: address files to analysed, archived shots and a result per job.

``ResultDaemon.step()`` does one pass: finish shots left half-done (a crash, a store that was
away), take a batch of address files (oldest first, claimed by rename like the spooler's
jobs), and for each shot: analyse it (results into the shot file, lyse-style), archive it to
the store, record it in the ledger, remove the local copy and move its address file to the
``processed`` folder, in that order. Then every running job is checked: complete (every
expected shot archived) means CSVs, the result JSON and ``DONE``; no new shot for
``result.shots_timeout_s`` means ``ERROR`` with what is missing. A store that is unreachable
or full makes the daemon wait and retry with back-off, keeping everything local.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from spooler.backends import get_backend
from spooler.fsutil import clear_stale_temps, fsync_dir
from spooler.headless import headless
from spooler.items import DeathCounter, Quarantine, describe_exception
from spooler.logs import for_job
from spooler.names import escaped
from spooler.settings import Folders, Settings
from spooler.states import JobState
from spooler.store import JobRecord, Transaction
from spooler.watching import WatchingDaemon

from . import locklease
from .addresses import Address, BadAddress, DamagedShot, check_shot, read_address
from .analysis import AnalysisError, analyse, load_routines
from .archive import (
    Archived,
    StoreUnavailable,
    archive,
    checksum,
    copy_durably,
    flush_file,
    is_transient,
)
from .isolated import run_isolated
from .killlock import release_leaked
from .ledger import Ledger, ShotRow
from .outputs import experiment_frame, result_document, shot_frame, write_csv, write_result

__all__ = ["BadAddress", "ResultDaemon"]

log = logging.getLogger(__name__)

KIND = "shot"  # the DeathCounter's kind of item: an address file and the shot it names
KIND_SEEN = "shot, seen"  # deaths of an isolated process on the shot, seen by the daemon
ISOLATED_TIMEOUT_S = 20.0  # within systemd's watchdog interval (60 s; pings every 30 s)


def _died(daemon: int, seen: int, last: str | None) -> str:
    parts = []
    if daemon:
        parts.append(f"the result daemon died {daemon} time(s) while handling this shot")
    if seen:
        how = f" (last: {last})" if last else ""
        parts.append(f"a process handling it alone died {seen} time(s){how}")
    return (
        f"{' and '.join(parts)}: a damaged file that crashes a library, or an analysis routine "
        "that ends the process; given up without another try"
    )


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
        # analysed copies, on their way to the store
        self.work = settings.folders.state / "result-work"
        self.work.mkdir(exist_ok=True)
        for stale in self.work.glob(".*.tmp") if exclusive else ():
            stale.unlink()  # a copy a crash cut short; its shot is still where it came from
        if settings.lab.labscript_profile is not None:
            import sys

            if "labscript_utils" not in sys.modules:
                from spooler.lab.profile import activate

                activate(settings.lab.labscript_profile)
        self.ledger = Ledger(self.jobs.store)
        self.deaths = DeathCounter(self.jobs.store, "result", settings.limits.item_deaths_max)
        self.quarantine = Quarantine(settings.folders.quarantine, "result daemon")
        self._doing = ""  # the step of the shot in hand, for "internal error while <step>"
        self._ended = False  # its start record cleared already
        self._last_death: str | None = None  # how the last isolated process died
        self.routines = load_routines(settings.result.routines)
        self.memory_routine = settings.result.memory_routine or (
            self.routines[-1].name if self.routines else None
        )
        self.backend = get_backend(settings.backend)
        self._retry_at = float("-inf")
        self._delay_s = settings.result.archive_retry_interval_s
        self._reported: set[str] = set()
        self._lease_short = False  # result.locklease done (after the suite connected)

    # -- the loop -----------------------------------------------------------------------

    def step(self) -> int:
        """One pass; returns the number of shots finished."""
        if self.clock() < self._retry_at:
            return 0
        done = 0
        try:
            # Addresses claimed but not finished: a crash, a store that was away, or one
            # unreadable; _process takes each from wherever its ledger row says it got.
            for name in sorted(os.listdir(self.claimed)):
                done += self._take(self.claimed / name)
            if self.clock() >= self._next_rescan or not self.addresses.merge_hints():
                self.addresses.rescan()
                self._next_rescan = self.clock() + self.settings.intake.rescan_interval_s
            for candidate in self.addresses.take(self.settings.result.batch_max_shots):
                claim = self.addresses.claim(candidate)
                if claim is not None:
                    done += self._take(claim.path)
        except StoreUnavailable as exc:
            release_leaked()  # h5_lock's, after zlock failed (no shot is open here)
            log.warning(
                "waiting for the store or zlock (next try in %.1f s): %s", self._delay_s, exc
            )
            self._retry_at = self.clock() + self._delay_s
            self._delay_s = min(
                2 * self._delay_s, self.settings.result.archive_retry_interval_max_s
            )
            return done
        self._delay_s = self.settings.result.archive_retry_interval_s
        self._check_jobs()
        return done

    def run_once(self) -> int:
        """Process everything waiting, then return (a store that is away ends the pass)."""
        self._warm_up()
        total = 0
        self._next_rescan = float("-inf")
        while True:
            done = self.step()
            total += done
            if done == 0:
                return total

    @staticmethod
    def watched_folders(folders: Folders) -> tuple[Path, Path]:
        return folders.addresses, folders.result_claimed

    # -- the loop (WatchingDaemon.run) ----------------------------------------------------

    def _prepare(self) -> None:
        self._warm_up()

    def _warm_up(self) -> None:
        """Import the labscript suite now, not inside the first shot: a process killed while
        it imports (a second or more) must not count as a death on that shot. Only with the
        lab's own profile (``lab.labscript_profile``): with the user's, importing the suite
        may start servers (zlock) of that profile, which is left to the first shot."""
        if self.settings.lab.labscript_profile is None:
            return
        # in this order: the suite's h5_lock before h5py, as the suite requires
        for module in ("labscript_utils.h5_lock", "h5py", "lyse", "lyse.dataframe_utilities"):
            importlib.import_module(module)
        headless()  # the suite's import installed its Tk exception hook

    def _pass(self, look: bool) -> bool:
        if look:
            self._next_rescan = self.clock()  # list the folder ourselves now
        return bool(self.step() or (len(self.addresses) and self.clock() >= self._retry_at))

    def _sleep_s(self) -> float:
        if self.clock() < self._retry_at:
            return self._retry_at - self.clock()  # the store is away: wait for the retry
        return max(0.0, self._next_rescan - self.clock())

    # -- one shot -------------------------------------------------------------------------

    def _take(self, address_path: Path) -> int:
        """One address file and its shot, as one item (:mod:`spooler.items`).

        Its start is recorded first. An unexpected exception gives it up to the quarantine
        folder. A shot on which a process died before is handled again in a process of its
        own (:mod:`result.isolated`), where a crash is seen for what it is: a death of the
        daemon itself may have been a kill from outside, a death of that process is the
        shot's. The shot is given up after ``limits.item_deaths_max`` deaths of which one at
        least was seen so (the daemon itself dies at most once on a shot: after that, the
        shot is only ever handled in a process of its own)."""
        name = address_path.name
        read = self.jobs.read
        daemon_deaths = self.deaths.deaths(read, KIND, name)
        seen_deaths = self.deaths.deaths(read, KIND_SEEN, name)
        limit = self.settings.limits.item_deaths_max
        if seen_deaths and daemon_deaths + seen_deaths >= limit:
            self._give_up(address_path, _died(daemon_deaths, seen_deaths, self._last_death))
            return 0
        if daemon_deaths or seen_deaths:
            return self._take_isolated(address_path)
        self.deaths.started(KIND, name)
        return self._take_here(address_path)

    def _take_here(self, address_path: Path) -> int:
        """The shot's work in this process (its start recorded by the caller)."""
        name = address_path.name
        self._doing = "reading the address file"
        self._ended = False
        try:
            if not self._lease_short and locklease.shorten():  # a kill must not lock the
                self._lease_short = True  # shot for the suite's 45 s
                log.info("zlock locks of this process are leased for %g s", locklease.LEASE_S)
            return self._process(address_path)
        except StoreUnavailable:
            raise  # the store's fault, not the shot's: everything stays, tried again later
        except Exception as exc:
            if is_transient(exc):  # a server of the suite did not answer (zlock): wait
                raise StoreUnavailable(f"while {self._doing}: {describe_exception(exc)}") from exc
            for_job(log, self._job_of(name)).exception("internal error while %s", self._doing)
            self._give_up(
                address_path, f"internal error while {self._doing}: {describe_exception(exc)}"
            )
            return 0
        finally:
            if not self._ended:
                self.deaths.ended(KIND, name)

    def _take_isolated(self, address_path: Path) -> int:
        """Handle a suspect shot in a process of its own and watch how that process ends."""
        name = address_path.name
        jlog = for_job(log, self._job_of(name))
        jlog.warning("a process died on %s before: handling it in a process of its own", name)
        # No start is recorded here: this daemon only waits, and its child dies with it, so a
        # death of the daemon meanwhile is a kill from outside, not the shot's doing.
        outcome = run_isolated(self.settings.path, address_path, timeout_s=ISOLATED_TIMEOUT_S)
        if outcome.store_unavailable:
            raise StoreUnavailable("the store is unavailable (seen by the isolated process)")
        if outcome.death is None:
            with self.jobs.change() as tx:
                self.deaths.end(tx, KIND, name)
                self.deaths.end(tx, KIND_SEEN, name)
            row = Ledger.get(self.jobs.read, name)
            return int(row is not None and row.state == "archived")
        with self.jobs.change() as tx:  # the death was seen: it is the shot's
            self.deaths.begin(tx, KIND_SEEN, name)
        self._last_death = outcome.death
        jlog.error("the process handling %s died: %s", name, outcome.death)
        return self._take(address_path) if address_path.exists() else 0

    def take_alone(self, address_path: Path) -> int:
        """In the isolated process (:mod:`result.isolated`): the shot's work, here."""
        self._warm_up()
        return self._take_here(address_path)

    def _job_of(self, address: str) -> str:
        row = Ledger.get(self.jobs.read, address)
        return (row.job_id if row is not None else None) or "-"

    def _process(self, address_path: Path) -> int:
        name = address_path.name
        row = Ledger.get(self.jobs.read, name)
        if row is not None and row.state in ("archived", "quarantined"):
            # Done before: the same address again (a crash before it was filed), or a new
            # shot whose address has an old one's name (a requeued job, a late repeat).
            try:
                shot = str(self._read(address_path).shot)
            except BadAddress:
                shot = row.local_path
            if shot != row.local_path:
                address_path = self._rename_claimed(address_path)
                name, row = address_path.name, None
        if row is not None and row.state == "quarantined":
            self._quarantine_files(row, address_path)  # given up before a crash: finish it
            return 0
        if row is None:
            try:
                address = self._read(address_path)
            except BadAddress as exc:
                self._refuse(address_path, str(exc))
                return 0
            with self.jobs.change() as tx:  # from here on a death is the job's shot's
                Ledger.claim(
                    tx,
                    name,
                    job_id=address.job_id,
                    attempt=address.attempt,
                    experiment=address.experiment,
                    shot_index=address.shot_index,
                    local_path=str(address.shot),
                )
                self._count_made(tx, address.job_id, address.attempt)
            row = Ledger.get(self.jobs.read, name)
            assert row is not None
        if row.state == "received":
            self._doing = "checking the shot file"
            assert row.job_id and row.experiment and row.attempt is not None
            assert row.shot_index is not None
            address = Address(
                Path(row.local_path), row.job_id, row.experiment, row.shot_index, row.attempt
            )
            try:
                check_shot(address, self.settings.lab.globals)
            except BadAddress as exc:
                with self.jobs.change() as tx:
                    Ledger.forget(tx, name)
                    self._count_made(tx, row.job_id, row.attempt)
                self._refuse(address_path, str(exc))
                return 0
            except DamagedShot as exc:
                self._give_up(address_path, f"not readable as a labscript shot: {exc}")
                return 0
            with self.jobs.change() as tx:
                Ledger.checked(tx, name)
            row = Ledger.get(self.jobs.read, name)
            assert row is not None
        jlog = for_job(log, row.job_id or "-")
        local = Path(row.local_path)
        work = self.work / f"{name}.h5"
        target = self._target(row)
        if row.state == "claimed":
            # lyse writes into the file it analyses, and an HDF5 file cut off mid-write is
            # broken: so the analysis works on a copy, and the shot stays untouched until
            # the analysed copy is safe on the store.
            self._doing = "analysing the shot"
            self._analyse(row, local, work)
            row = Ledger.get(self.jobs.read, name)
            assert row is not None
        if row.state == "analysed":
            self._doing = "archiving the shot"
            if work.exists():
                archived = archive(work, target)
            elif target.exists():
                archived = Archived(target, *checksum(target))  # archived before a crash
            elif local.exists():
                archived = archive(local, target)  # its analysis failed: keep the shot as it came
            else:
                jlog.error("shot %s is gone and not on the store; its address file is kept", local)
                self._file_address(address_path, suffix=".missing")
                return 0
            self._doing = "reading the archived shot's row of lyse's DataFrame"
            frame = shot_frame(archived.path)
            self._doing = "recording the archived shot"
            with self.jobs.change() as tx:
                Ledger.archived(
                    tx,
                    name,
                    sds_path=str(archived.path),
                    size=archived.size,
                    sha256=archived.sha256,
                    frame=frame,
                )
                self.deaths.end(tx, KIND, name)  # what is left (cleaning up) cannot crash on it
                job = tx.get(row.job_id) if row.job_id else None
                if job is not None and job.attempt == row.attempt:
                    tx.set_counts(
                        job.job_id, shots_done=Ledger.archived_count(tx, job.job_id, job.attempt)
                    )
            self._ended = True
            if job is None or job.attempt != row.attempt or job.state is not JobState.RUNNING:
                jlog.warning(
                    "shot %s belongs to no running job; archived at %s", local.name, archived.path
                )
        self._doing = "removing the local copy and filing the address"
        for leftover in (work, local):
            if leftover.exists():
                leftover.unlink()
                fsync_dir(leftover.parent)
        self._file_address(address_path)
        return 1

    @staticmethod
    def _count_made(tx: Transaction, job_id: str, attempt: int) -> None:
        """The job's count of shots made: what the spooler's look-ahead goes by."""
        job = tx.get(job_id)
        if job is not None and job.attempt == attempt:
            tx.set_counts(job_id, shots_made=Ledger.received_count(tx, job_id, attempt))

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
            self.deaths.end(tx, KIND, name)
        quarantined = Ledger.get(self.jobs.read, name)
        assert quarantined is not None
        self._quarantine_files(quarantined, address_path)

    def _quarantine_files(self, row: ShotRow, address_path: Path) -> None:
        """Move a given-up shot and its address file to the quarantine folder (again after a
        crash: the ledger said quarantined first)."""
        local = Path(row.local_path)
        (self.work / f"{row.address}.h5").unlink(missing_ok=True)
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

    def _analyse(self, row: ShotRow, local: Path, work: Path) -> None:
        memory: str | None = None
        error: str | None = None
        work.unlink(missing_ok=True)  # a copy a crash left half analysed
        if not local.exists():
            error = f"the shot file {local} is missing"
        else:
            copy_durably(local, work)
            try:
                results = analyse(work, self.routines)
            except AnalysisError as exc:
                error = str(exc)
                work.unlink()  # archive the shot as it came, not a half-analysed copy
            else:
                flush_file(work)
                value = results.get(self.memory_routine or "", {}).get("memory", "")
                memory = "" if value is None else str(value)
        with self.jobs.change() as tx:
            Ledger.analysed(tx, row.address, memory=memory, error=error)
            job = tx.get(row.job_id) if row.job_id else None
            if (
                error
                and job is not None
                and job.state is JobState.RUNNING
                and job.attempt == row.attempt
            ):
                tx.transition(
                    job.job_id, JobState.ERROR, note="Analysis failed", error_message=error
                )
        if error:
            for_job(log, row.job_id or "-").error("%s", error)

    def _target(self, row: ShotRow) -> Path:
        job = row.job_id or "unattributed"
        experiment = row.experiment or "unknown"
        return self.settings.folders.sds / job / experiment / Path(row.local_path).name

    def _file_address(self, path: Path, suffix: str = "") -> None:
        if not path.exists():
            return
        target = self.settings.folders.processed / (path.name + suffix)
        n = 1
        while target.exists():
            target = self.settings.folders.processed / f"{path.name}{suffix}.{n}"
            n += 1
        os.rename(path, target)
        fsync_dir(target.parent)
        fsync_dir(path.parent)

    # -- jobs -------------------------------------------------------------------------------

    def _check_jobs(self) -> None:
        for job in self.jobs.read.jobs(JobState.RUNNING):
            try:
                self._check_job(job)
            except StoreUnavailable:
                raise
            except Exception as exc:  # one job must not stop the others, nor the daemon
                for_job(log, job.job_id).exception("internal error while finishing the job")
                with self.jobs.change() as tx:
                    if tx.require(job.job_id).state is JobState.RUNNING:
                        tx.transition(
                            job.job_id,
                            JobState.ERROR,
                            note="Internal error while finishing the job",
                            error_message="internal error while finishing the job: "
                            + describe_exception(exc),
                        )

    def _check_job(self, job: JobRecord) -> None:
        """Complete, timed out, or still waiting for shots."""
        experiments = self.jobs.read.experiments(job.job_id, job.attempt)
        if not experiments or any(e.engaged_at is None for e in experiments):
            return
        rows = Ledger.of_job(self.jobs.read, job.job_id, job.attempt)
        accounted: dict[str, int] = {}  # archived or given up
        for row in rows:
            if row.state in ("archived", "quarantined") and row.experiment:
                accounted[row.experiment] = accounted.get(row.experiment, 0) + 1
        missing = {
            e.name: (e.shots_expected or 0) - accounted.get(e.name, 0)
            for e in experiments
            if accounted.get(e.name, 0) < (e.shots_expected or 0)
        }
        if not missing:
            given_up = [r for r in rows if r.state == "quarantined"]
            if given_up:
                self._fail_quarantined(job, given_up)
            else:
                self._finish(job, rows)
            return
        # Quiet since the job's engagement or the machine's last shot of any job: a job
        # engaged ahead (spooler.dispatch) waits behind the shots of the jobs before it.
        last = Ledger.last_received_any(self.jobs.read)
        engaged = max(e.engaged_at or 0.0 for e in experiments)
        quiet_s = self.wall_clock() - max(last or 0.0, engaged)
        if quiet_s > self.settings.result.shots_timeout_s:
            what = ", ".join(f"{n} of {name}" for name, n in missing.items())
            with self.jobs.change() as tx:
                tx.transition(
                    job.job_id,
                    JobState.ERROR,
                    note="Shots stopped arriving",
                    error_message=f"no shot arrived for {quiet_s:.0f} s; missing: {what}",
                )
            for_job(log, job.job_id).error("shots stopped arriving; missing %s", what)

    def _fail_quarantined(self, job: JobRecord, given_up: list[ShotRow]) -> None:
        """Every other shot is archived, but some were given up: the job ends ERROR."""
        first = given_up[0]
        shot = Path(first.local_path).name
        message = (
            f"{len(given_up)} shot(s) given up and kept in "
            f"{self.settings.folders.quarantine}; the first: {first.experiment} shot "
            f"{first.shot_index} ({shot}): {first.error}"
        )
        with self.jobs.change() as tx:
            tx.transition(
                job.job_id,
                JobState.ERROR,
                expect=JobState.RUNNING,
                note="Shots given up (see error_message); the others are archived",
                error_message=message,
            )
        for_job(log, job.job_id).error("%s", message)

    def _finish(self, job: JobRecord, rows: list[ShotRow]) -> None:
        result_path, store, count = self._write_outputs(job, rows)
        with self.jobs.change() as tx:
            tx.transition(
                job.job_id,
                JobState.DONE,
                expect=JobState.RUNNING,
                note=(
                    f"Done: {count} shot(s) analysed; result in {result_path}, "
                    f"shots and CSVs in {store}"
                ),
            )
        for_job(log, job.job_id).info("done: %d shot(s), result %s", count, result_path)

    def _write_outputs(self, job: JobRecord, rows: list[ShotRow]) -> tuple[Path, Path, int]:
        """The CSV per experiment and the result JSON, from the ledger's archived rows."""
        experiments = self.jobs.read.experiments(job.job_id, job.attempt)
        archived = [r for r in rows if r.state == "archived"]
        store = self.settings.folders.sds / job.job_id
        clear_stale_temps(store)  # of a CSV whose writing a kill cut short
        for experiment in experiments:
            shots = [r for r in archived if r.experiment == experiment.name]
            shots.sort(key=lambda r: (r.shot_index if r.shot_index is not None else -1, r.address))
            write_csv(experiment_frame(shots), store / f"{experiment.name}.csv")
        result_path = self.settings.folders.results / f"{job.job_id}.json"
        write_result(result_document(self.backend, job.job_id, experiments, archived), result_path)
        return result_path, store, len(archived)

    # -- reprocessing -----------------------------------------------------------------------

    def reprocess(self, job_id: str) -> tuple[int, list[str]]:
        """Run the analysis again on a job's archived shots; returns (shots done, errors).

        Each archived shot is copied, analysed, verified and put back atomically in place of
        the old one; the ledger gets the new results and checksums, and a finished job its
        CSVs and result file anew."""
        job = self.jobs.read.require(job_id)
        rows = [
            r
            for r in Ledger.of_job(self.jobs.read, job_id, job.attempt)
            if r.state == "archived" and r.sds_path
        ]
        errors: list[str] = []
        done = 0
        for row in rows:
            archived_path = Path(str(row.sds_path))
            work = self.work / f"{row.address}.h5"
            work.unlink(missing_ok=True)
            copy_durably(archived_path, work)
            try:
                results = analyse(work, self.routines)
            except AnalysisError as exc:
                errors.append(str(exc))
                work.unlink()
                continue
            flush_file(work)
            replaced = archive(work, archived_path, replace=True)
            value = results.get(self.memory_routine or "", {}).get("memory", "")
            with self.jobs.change() as tx:
                Ledger.reanalysed(
                    tx,
                    row.address,
                    memory="" if value is None else str(value),
                    size=replaced.size,
                    sha256=replaced.sha256,
                    frame=shot_frame(archived_path),
                )
            work.unlink()
            done += 1
        if job.state is JobState.DONE:
            self._write_outputs(job, Ledger.of_job(self.jobs.read, job_id, job.attempt))
        note = f"Reprocessed {done} of {len(rows)} archived shot(s)"
        if errors:
            note += f"; {len(errors)} failed, the first: {errors[0]}"
        with self.jobs.change() as tx:
            tx.note(job_id, note, unless_last=False)
        for_job(log, job_id).info("%s", note)
        return done, errors
