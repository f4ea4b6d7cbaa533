"""Giving up a shot: it and its address file kept in the quarantine folder, with the reason.

No single shot stops the daemon: a shot that cannot be archived (not readable as a labspool
shot, processes that died on it, an internal error) is given up. The ledger marks it
``quarantined`` first, with the reason; then the shot (if the ledger has taken it, so that
it is known to be the job's own file) and its address file are moved to the quarantine
folder, kept, with a reason file beside them. A kill between the two is finished at the next
start (:meth:`GivingUp.quarantine_files` again). The job ends ERROR once its other shots are
archived (:mod:`result.finishing`).

An address that is not believed (:class:`result.addresses.BadAddress`) is refused: only the
address file is quarantined; the file it names is not touched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from result.deaths import ShotDeaths
from result.inhand import InHand
from result.placing import Placing, stored_place
from spooler.core.items import Quarantine
from spooler.core.jobs import Jobs
from spooler.core.logs import for_job
from spooler.core.names import escaped
from spooler.core.settings import Folders
from spooler.core.store.shots import Ledger, ShotRow

__all__ = ["GivingUp"]

log = logging.getLogger(__name__)


class GivingUp:
    """Refusing addresses and giving up shots into the quarantine folder."""

    def __init__(
        self,
        jobs: Jobs,
        quarantine: Quarantine,
        deaths: ShotDeaths,
        shots: InHand,
        placing: Placing,
        folders: Folders,
    ) -> None:
        self.jobs = jobs
        self.quarantine = quarantine
        self.deaths = deaths
        self.shots = shots
        self.placing = placing
        self.folders = folders

    def job_of(self, address: str) -> str:
        """The job of the address file *address*, for the log ("-": none known)."""
        row = Ledger.get(self.jobs.read, address)
        return (row.job_id if row is not None else None) or "-"

    def refuse(self, address_path: Path, reason: str) -> None:
        """An address that is not believed: quarantined; the file it names is not touched."""
        log.error("refused the address file %s: %s", escaped(address_path.name), reason)
        self.quarantine.put(address_path, f"refused: {reason}")

    def give_up(self, address_path: Path, reason: str) -> None:
        """Give up a shot: the address file and the shot (if the ledger has taken it, so it is
        known to be the job's own file) go to the quarantine folder, kept; the ledger marks it
        quarantined, and its job ends ERROR once its other shots are archived."""
        name = address_path.name
        self.shots.suspects.pop(name, None)
        row = Ledger.get(self.jobs.read, name)
        if row is None:
            self.refuse(address_path, reason)
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
            self.deaths.forget(tx, name)
        quarantined = Ledger.get(self.jobs.read, name)
        assert quarantined is not None
        self.quarantine_files(quarantined, address_path)

    def quarantine_files(self, row: ShotRow, address_path: Path) -> None:
        """Move a given-up shot and its address file to the quarantine folder (again after a
        crash: the ledger said quarantined first)."""
        local = Path(row.local_path)
        self.placing.remove_leftovers(stored_place(self.folders, row))
        self.shots.again.discard(row.address)
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
