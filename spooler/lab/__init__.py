"""The lab boundary: the small interface through which the spooler runs experiments.

The real lab is runmanager (which compiles shots and sends them to BLACS); anything with
these methods can stand in for it. Errors are :class:`LabUnavailable` (wait and retry, the
job stays QUEUED) or :class:`LabRejected` (the job ends ERROR with the lab's message).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spooler.core.errors import ConfigError, LabUnavailable
from spooler.core.health import BlacsReport
from spooler.core.settings import Settings
from spooler.lab.blacs import BlacsControl, Withdrawal

__all__ = ["Lab", "LabObservation", "NoLab", "Withdrawal", "make_lab"]


@dataclass(frozen=True, slots=True)
class LabObservation:
    """What the lab's programs say of themselves (the health monitor's input)."""

    runmanager: str | None  # None: runmanager answers; else why not
    blacs: BlacsReport | None  # what BLACS's plugin reports (None: no answer)
    blacs_problem: str | None = None  # why BLACS did not answer
    configured: bool = True  # False: no lab at all (lab.kind none)


class Lab(Protocol):
    def observe(self) -> LabObservation:
        """Ask runmanager and BLACS's plugin how they are (never raises for their absence)."""

    def recover(self) -> dict[str, Any]:
        """Have BLACS's plugin restart the device tabs in error and lift the queue's pause;
        returns what it did (``restarted``, ``still_in_error``, ``unpaused``)."""

    def set_globals(self, values: Mapping[str, object]) -> None:
        """Set the globals: ``job_id``, ``experiment_name``, ``shots``, ``seed`` (if given);
        ``shot_indices`` (a list), if given, are the shots to make instead of
        ``range(shots)`` (a recovery makes only the missing ones)."""

    def set_labscript_file(self, path: Path) -> None: ...

    def set_shot_output_folder(self, path: Path) -> None: ...

    def n_shots(self) -> int:
        """How many shots the next :meth:`engage` makes."""

    def engage(self) -> None:
        """Compile the shots and send them to the machine; returns once they are queued."""

    def withdraw(self, folders: Sequence[Path], *, abort: bool) -> Withdrawal:
        """Take the shots in *folders* that have not run out of the machine's queue, and
        refuse those that arrive later; with *abort*, also abort the running shot if it is
        one of them."""


class NoLab:
    """No lab configured (``lab.kind: none``): jobs are validated and wait QUEUED."""

    def __init__(self, config_path: Path) -> None:
        self.reason = f"no lab is configured (lab.kind is none in {config_path})"

    def observe(self) -> LabObservation:
        return LabObservation(self.reason, None, configured=False)

    def recover(self) -> dict[str, Any]:
        raise LabUnavailable(self.reason)

    def _unavailable(self) -> None:
        raise LabUnavailable(self.reason)

    def set_globals(self, values: Mapping[str, object]) -> None:
        self._unavailable()

    def set_labscript_file(self, path: Path) -> None:
        self._unavailable()

    def set_shot_output_folder(self, path: Path) -> None:
        self._unavailable()

    def n_shots(self) -> int:
        raise LabUnavailable(self.reason)

    def engage(self) -> None:
        self._unavailable()

    def withdraw(self, folders: Sequence[Path], *, abort: bool) -> Withdrawal:
        raise LabUnavailable(self.reason)


def make_lab(settings: Settings) -> Lab:
    """The lab the configuration names (for runmanager, its labscript profile is activated)."""
    if settings.lab.kind == "none":
        return NoLab(settings.path)
    if settings.lab.kind == "runmanager":
        if settings.lab.labscript_profile is not None:
            from spooler.core.labprofile import activate

            activate(settings.lab.labscript_profile)
        from spooler.lab.runmanager import RunmanagerLab

        return RunmanagerLab(
            settings.lab.runmanager, settings.lab.globals, BlacsControl(settings.folders.control)
        )
    raise ConfigError(f"{settings.path}: lab.kind: {settings.lab.kind!r} is not available")
