"""The tree's layout: every folder of the configuration, and where each file goes in them.

:class:`Folders` holds the folders of the configuration's ``folders`` section (resolved
against the configuration file's folder by :func:`spooler.core.settings.load_settings`),
and derives from them the places the daemons share: the claimed files, the database, each
experiment's shot folders (with the folders of shots made again by a recovery), and a job's
folder, shots and picture on the store (SDS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from spooler.core.names import picture_name

__all__ = ["RECOVERY_PREFIX", "Folders"]

RECOVERY_PREFIX = "recovery-"  # the folders of shots made again (spooler.pipeline.recovery)
_RECOVERY = re.compile(r"recovery-[1-9][0-9]{0,5}")


@dataclass(frozen=True, kw_only=True)
class Folders:
    dump: Path
    staging: Path
    status: Path
    results: Path
    jobs: Path
    rejected: Path
    state: Path
    shots: Path
    addresses: Path
    processed: Path
    sds: Path
    control: Path
    quarantine: Path

    @property
    def claimed(self) -> Path:
        """Job files taken out of the dump folder and not yet filed (spooler only)."""
        return self.state / "claimed"

    @property
    def result_claimed(self) -> Path:
        """Address files the result daemon has taken and not yet filed to processed/."""
        return self.state / "result-claimed"

    @property
    def database(self) -> Path:
        return self.state / "labspool.sqlite3"

    def shot_folder(self, job_id: str, attempt: int, experiment: str, recovery: int = 0) -> Path:
        """Where runmanager writes an experiment's shots (later attempts in their own folder;
        the shots a recovery makes again in ``recovery-<n>`` inside it:
        spooler.pipeline.recovery)."""
        job = self.shots / job_id
        folder = job / experiment if attempt == 1 else job / f"attempt-{attempt}" / experiment
        return folder if recovery == 0 else folder / f"{RECOVERY_PREFIX}{recovery}"

    def shot_folders(
        self, job_id: str, attempt: int, experiment: str, recoveries: int
    ) -> list[Path]:
        """Every folder an experiment's shots were made in: its own and its recoveries'."""
        return [self.shot_folder(job_id, attempt, experiment, n) for n in range(recoveries + 1)]

    def is_shot_folder(self, folder: Path, job_id: str, attempt: int, experiment: str) -> bool:
        """*folder* is the experiment's shot folder or one of its recoveries'."""
        base = self.shot_folder(job_id, attempt, experiment)
        return folder == base or (
            folder.parent == base and _RECOVERY.fullmatch(folder.name) is not None
        )

    def shot_owner(self, folder: Path) -> tuple[str, int] | None:
        """The (job id, attempt) whose shots a folder under ``shots`` holds (None: not one)."""
        try:
            parts = folder.relative_to(self.shots).parts
        except ValueError:
            return None
        if len(parts) >= 3 and parts[1].startswith("attempt-") and parts[1][8:].isdigit():
            return parts[0], int(parts[1][8:])
        return (parts[0], 1) if len(parts) >= 2 else None

    def accepted_job(self, job_id: str) -> Path:
        """The job file as it was accepted (``jobs/<job_id>/job.json``, beside its rendered
        experiments): what the dispatcher engages, a requeue runs again, and the multi-shot
        routines read the instructions from."""
        return self.jobs / job_id / "job.json"

    def stored_job(self, job_id: str) -> Path:
        """The job's folder on the store (SDS): a folder of shots per experiment, the CSVs,
        the multi-shot routines' files (the picture: :meth:`picture`)."""
        return self.sds / job_id

    def stored_shot(self, job_id: str, experiment: str, shot_name: str) -> Path:
        """Where a shot is archived on the store."""
        return self.stored_job(job_id) / experiment / shot_name

    def picture(self, job_id: str) -> Path:
        """The job's picture, drawn by ``result.routines.picture`` once the job is done."""
        return self.stored_job(job_id) / picture_name(job_id)

    def as_dict(self) -> dict[str, Path]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def create(self) -> None:
        for path in (*self.as_dict().values(), self.claimed):
            path.mkdir(parents=True, exist_ok=True)
