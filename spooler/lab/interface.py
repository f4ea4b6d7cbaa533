"""The lab boundary's interface: what the spooler asks of a lab (:class:`Lab`), what a lab
says of itself (:class:`LabObservation`), and the lab of a tree with none configured."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spooler.core.errors import LabUnavailable
from spooler.core.health import BlacsReport
from spooler.lab.blacs import Withdrawal

__all__ = ["Lab", "LabObservation", "NoLab"]


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
