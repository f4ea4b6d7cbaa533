"""The result daemon's ledger: every shot it has taken, where it is now, and its results.

A table in the job store (the same SQLite database as the job states), so that after a
restart the daemon knows exactly what is left, a shot's progress and its job's state change
in one transaction, and ``labspool-result reprocess JOB`` can find every archived shot.

A shot's row is ``received`` once its address file is read and believed (the shot's path
checked) and ``archived`` once its analysed copy is verified in its place on the store (the
local copy removable; ``memory``, ``error`` of its analysis, ``routines`` the version of the
routines that ran: :func:`result.task.routines_version`), or ends ``quarantined`` (given up
and kept in the quarantine folder; ``error`` says why and ``sds_path`` names the reason file
there). Rows of labspool before the executors may still say ``claimed`` (the shot was
checked) or ``analysed`` (results saved in a work copy): both are analysed again.
``frame`` holds the shot's row of lyse's DataFrame, read from the archived copy, so that a
job's DataFrame is built from the ledger without opening every shot again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from spooler.core.store.reader import Reader

__all__ = ["Ledger", "ShotRow"]

_COLUMNS = (
    "address, job_id, attempt, experiment, shot_index, local_path, state, sds_path, size, "
    "sha256, memory, frame, error, received_at, archived_at, routines"
)
# the same without the two large ones (the memory entry, the DataFrame row)
_LIGHT_COLUMNS = _COLUMNS.replace("memory, frame", "NULL, NULL")


@dataclass(frozen=True)
class ShotRow:
    address: str
    job_id: str | None
    attempt: int | None
    experiment: str | None
    shot_index: int | None
    local_path: str
    state: str
    sds_path: str | None
    size: int | None
    sha256: str | None
    memory: str | None
    frame: bytes | None
    error: str | None
    received_at: float
    archived_at: float | None
    routines: str | None


class Ledger:
    """The ledger's named queries; each takes the view (a Reader or a Transaction) it runs in."""

    @staticmethod
    def get(view: Reader, address: str) -> ShotRow | None:
        row = view.execute(f"SELECT {_COLUMNS} FROM shots WHERE address = ?", (address,)).fetchone()
        return None if row is None else ShotRow(*row)

    @staticmethod
    def claim(
        view: Reader,
        address: str,
        *,
        job_id: str | None,
        attempt: int | None,
        experiment: str | None,
        shot_index: int | None,
        local_path: str,
    ) -> None:
        view.execute(
            "INSERT OR IGNORE INTO shots (address, job_id, attempt, experiment, shot_index, "
            "local_path, state, received_at) VALUES (?, ?, ?, ?, ?, ?, 'received', ?)",
            (address, job_id, attempt, experiment, shot_index, local_path, time.time()),
        )

    @staticmethod
    def forget(view: Reader, address: str) -> None:
        """A received address that was then refused: it names no shot of the job."""
        view.execute("DELETE FROM shots WHERE address = ? AND state = 'received'", (address,))

    @staticmethod
    def archived(
        view: Reader,
        address: str,
        *,
        sds_path: str,
        size: int,
        sha256: str,
        frame: bytes,
        memory: str | None,
        error: str | None,
        routines: str | None,
    ) -> None:
        view.execute(
            "UPDATE shots SET state = 'archived', sds_path = ?, size = ?, sha256 = ?, frame = ?, "
            "memory = ?, error = ?, routines = ?, archived_at = ? WHERE address = ?",
            (sds_path, size, sha256, frame, memory, error, routines, time.time(), address),
        )

    @staticmethod
    def archived_at(view: Reader, sds_path: str) -> str | None:
        """The address of the shot archived at *sds_path*, if any."""
        row = view.execute(
            "SELECT address FROM shots WHERE sds_path = ? AND state = 'archived'", (sds_path,)
        ).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def quarantined(view: Reader, address: str, *, error: str) -> None:
        """Given up: the shot is to be kept in the quarantine folder; *error* says why."""
        view.execute(
            "UPDATE shots SET state = 'quarantined', error = ? WHERE address = ?", (error, address)
        )

    @staticmethod
    def quarantine_place(view: Reader, address: str, reason_file: str) -> None:
        """Where a quarantined shot's reason file is (``sds_path``: where the shot is now)."""
        view.execute("UPDATE shots SET sds_path = ? WHERE address = ?", (reason_file, address))

    @staticmethod
    def reanalysed(
        view: Reader,
        address: str,
        *,
        memory: str | None,
        error: str | None,
        size: int,
        sha256: str,
        frame: bytes,
        routines: str,
    ) -> None:
        view.execute(
            "UPDATE shots SET memory = ?, error = ?, size = ?, sha256 = ?, frame = ?, "
            "routines = ? WHERE address = ?",
            (memory, error, size, sha256, frame, routines, address),
        )

    @staticmethod
    def of_job(view: Reader, job_id: str, attempt: int) -> list[ShotRow]:
        rows = view.execute(
            f"SELECT {_COLUMNS} FROM shots WHERE job_id = ? AND attempt = ? "
            "ORDER BY experiment, shot_index, address",
            (job_id, attempt),
        )
        return [ShotRow(*r) for r in rows]

    @staticmethod
    def archived_count(view: Reader, job_id: str, attempt: int) -> int:
        (count,) = view.execute(
            "SELECT COUNT(*) FROM shots WHERE job_id = ? AND attempt = ? AND state = 'archived'",
            (job_id, attempt),
        ).fetchone()
        return int(count)

    @staticmethod
    def received_count(view: Reader, job_id: str, attempt: int) -> int:
        """Shots of the attempt received, in whatever state now: the shots made."""
        (count,) = view.execute(
            "SELECT COUNT(*) FROM shots WHERE job_id = ? AND attempt = ?", (job_id, attempt)
        ).fetchone()
        return int(count)

    @staticmethod
    def last_received_any(view: Reader) -> float | None:
        """When the newest shot of any job was received: the machine's last sign of work."""
        (last,) = view.execute("SELECT MAX(received_at) FROM shots").fetchone()
        return None if last is None else float(last)

    @staticmethod
    def to_reanalyse(view: Reader, job_id: str, attempt: int) -> list[ShotRow]:
        """The archived shots of one attempt by experiment and shot (read in the order of an
        index, not sorted), without their DataFrame row and memory entry (``frame`` and
        ``memory`` None: a new analysis makes new ones): what ``labspool-result reprocess``
        holds of a job while analysing it."""
        rows = view.execute(
            f"SELECT {_LIGHT_COLUMNS} FROM shots WHERE job_id = ? AND attempt = ? "
            "AND state = 'archived' ORDER BY experiment, shot_index",
            (job_id, attempt),
        )
        return [ShotRow(*r) for r in rows]
