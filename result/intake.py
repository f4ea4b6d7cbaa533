"""Taking shots in: claimed address files read, believed, recorded ``received``, submitted.

Each pass (:meth:`Intake.admit`) takes the address files claimed before and not in hand (a
crash, a store that was away), then new ones from the address folder (oldest first, claimed
by rename like the spooler's jobs). Each one read and believed (:mod:`result.addresses`) is
recorded ``received`` in the ledger at once, whatever the executor's room: the shots made
are what the spooler's look-ahead goes by, and a slow analysis must not idle the machine.
Only the tasks in flight are bounded: shots are submitted (:meth:`Intake.start`) while the
executor has room. What a crash left done (archived or given up, its address not filed) is
finished first and needs no room.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from result.addresses import Address, BadAddress, read_address
from result.archive import StoreUnavailable
from result.deaths import died
from result.parts import Parts, Step
from result.placing import stored_place
from result.task import ShotTask
from spooler.core.errors import describe_exception
from spooler.core.fsutil import is_environment_error
from spooler.core.intake import DumpFolder
from spooler.core.logs import for_job
from spooler.core.settings import Settings
from spooler.core.store import Transaction
from spooler.core.store.shots import Ledger

__all__ = ["Intake", "count_made"]

log = logging.getLogger(__name__)


def count_made(tx: Transaction, job_id: str, attempt: int) -> None:
    """The job's count of shots made: what the spooler's look-ahead goes by."""
    job = tx.get(job_id)
    if job is not None and job.attempt == attempt:
        tx.set_counts(job_id, shots_made=Ledger.received_count(tx, job_id, attempt))


class Intake(Step):
    """Claimed address files into the ledger and their shots into the executors."""

    def __init__(
        self,
        settings: Settings,
        parts: Parts,
        addresses: DumpFolder,
        *,
        room: Callable[[], int],
        rescan: Callable[[], object],
    ) -> None:
        """*room*: how many more shots the executor takes now; *rescan*: list the address
        folder if it is time to (its watcher's hints may be incomplete)."""
        super().__init__(parts)
        self.settings = settings
        self.addresses = addresses
        self.claimed = settings.folders.result_claimed
        self.room = room
        self.rescan = rescan
        self.routines = settings.result.routines
        self.memory_routine = settings.result.memory_routine_name()

    def read(self, address_path: Path) -> Address:
        return read_address(
            address_path,
            self.jobs.read,
            self.settings.folders,
            max_bytes=self.settings.limits.address_file_max_bytes,
        )

    def admit(self) -> None:
        """Claimed address files not in hand (a crash, a retry), then new ones, into the
        executor while it has room."""
        shots = self.shots
        self.executors.tick()
        unread = {path.name: path for path in shots.unread}
        shots.unread = []
        if not shots.flights:
            for name in sorted(os.listdir(self.claimed)):
                if name not in shots.waiting and name not in unread:
                    unread[name] = self.claimed / name
                    if name not in shots.submitted:
                        shots.again.add(name)  # left by a daemon before this one
        self.rescan()
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
                shots.waiting[path.name] = path
                if row.state in ("archived", "quarantined"):
                    done_before.append(path.name)
                continue
            try:
                new.append((path, self.read(path)))
            except BadAddress as exc:
                self.giving_up.refuse(path, str(exc))
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
                    count_made(tx, job_id, attempt)
            for path, _ in new:
                shots.waiting[path.name] = path
        # what a crash left done is finished first and needs no room: before the job's end
        # is checked this pass, so a job never ends with a local copy still to remove
        first = set(done_before)
        for name in done_before + [n for n in shots.waiting if n not in first]:
            if self.room() <= 0 and name not in first:
                break
            path = shots.waiting.pop(name)
            try:
                self.start(path)
            except StoreUnavailable:
                shots.waiting[name] = path
                raise
            except Exception as exc:  # one shot must not stop the daemon
                if is_environment_error(exc):
                    # the shot folder read-only or full: the machine's fault, not the shot's
                    shots.waiting[name] = path
                    raise StoreUnavailable(f"the shot folder: {describe_exception(exc)}") from exc
                job_id = self.giving_up.job_of(name)
                for_job(log, job_id).exception("internal error while taking %s", name)
                reason = f"internal error while taking the shot: {describe_exception(exc)}"
                self.giving_up.give_up(path, reason)

    def start(self, path: Path) -> None:
        """Submit the shot of a claimed address file (its ledger row made), or finish what a
        crash left of it."""
        name = path.name
        row = Ledger.get(self.jobs.read, name)
        if row is not None and row.state in ("archived", "quarantined"):
            # Done before: the same address again (a crash before it was filed), or a new
            # shot whose address has an old one's name (a requeued job, a late repeat).
            try:
                shot = str(self.read(path).shot)
            except BadAddress:
                shot = row.local_path
            if shot != row.local_path:
                self.shots.unread.append(self.files.rename_claimed(path))  # read next pass
                return
            if row.state == "quarantined":
                self.giving_up.quarantine_files(row, path)  # given up before a crash: finish it
            else:
                target = stored_place(self.settings.folders, row)
                self.placing.tidy([(row, target)])
                self.files.file([path])
            return
        if row is None:  # its row is gone (refused meanwhile): read again next pass
            self.shots.unread.append(path)
            return
        daemon_deaths, seen_deaths = self.deaths.counts(self.jobs.read, name)
        limit = self.settings.limits.item_deaths_max
        if seen_deaths and daemon_deaths + seen_deaths >= limit:
            reason = died(daemon_deaths, seen_deaths, self.shots.last_death)
            if name in self.shots.suspects:
                reason = f"{self.shots.suspects[name]}; then {reason}"
            self.giving_up.give_up(path, reason)
            return
        local, target = Path(row.local_path), stored_place(self.settings.folders, row)
        assert row.job_id and row.experiment and row.attempt is not None
        assert row.shot_index is not None
        if not local.exists() and not target.exists():
            for_job(log, row.job_id).error(
                "shot %s is gone and not on the store; its address file is kept", local
            )
            self.files.file([path], suffix=".missing")
            return
        task = ShotTask(
            address=name,
            source=str(local if local.exists() else target),
            target=str(target),
            routines=self.routines,
            memory_routine=self.memory_routine,
            expect=(row.job_id, row.experiment, row.shot_index, row.attempt),
            names=self.settings.lab.globals,
            suffix=self.placing.suffix,
            analyse=local.exists(),  # else: archived before a crash, only to be recorded
        )
        self.executors.submit(
            self.shots,
            path,
            task,
            job_id=row.job_id,
            daemon_deaths=daemon_deaths,
            deaths=self.deaths,
        )
