"""Pre-run checks (pychron's idea): before a job is engaged, is the machine fit to run it?

The folders' part of it: the shot folder and the store have the configured free space and
both take a file (runmanager and BLACS are asked through :meth:`spooler.lab.Lab.observe`).
The health monitor (:mod:`spooler.pipeline.monitor`) runs these with every look at the machine; a
failing check keeps the jobs waiting with the reason in their detail, and never fails a job.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from spooler.core.settings import Settings

__all__ = ["PreRunChecks"]


def _free_space_problem(what: str, folder: Path, floor_bytes: int) -> str | None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return f"cannot see the free space of the {what} {folder}: {exc.strerror}"
    if free < floor_bytes:
        return (
            f"the {what} {folder} has {free / 1e6:.0f} MB free, "
            f"below the floor of {floor_bytes / 1e6:.0f} MB"
        )
    return None


def _writable_problem(folder: Path, what: str = "store") -> str | None:
    probe = folder / f".labspool-check.{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"labspool pre-run check\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"the {what} {folder} does not take a file: {exc.strerror}"
    return None


class PreRunChecks:
    """The folders' checks (runmanager and BLACS are asked by the monitor: Lab.observe)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def folder_problems(self) -> list[tuple[str, str]]:
        """The folders' failing checks as (component, message): ``shot_folder``, ``store``."""
        folders, checks = self.settings.folders, self.settings.checks
        found = []
        shots = _free_space_problem(
            "shot folder", folders.shots, checks.shots_free_min_bytes
        ) or _writable_problem(folders.shots, "shot folder")
        if shots is not None:
            found.append(("shot_folder", shots))
        store = _free_space_problem(
            "store", folders.sds, checks.store_free_min_bytes
        ) or _writable_problem(folders.sds)
        if store is not None:
            found.append(("store", store))
        return found
