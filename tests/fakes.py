"""A test double of the lab boundary, for unit tests only (never shipped)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spooler.core.errors import LabRejected, LabUnavailable
from spooler.core.health import BlacsReport
from spooler.lab import LabObservation, Withdrawal


class Clock:
    """A clock the test moves by hand (``clock.now += 10``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingLab:
    """Records every call; can be unreachable, or refuse a global, like runmanager would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.reachable = True
        self.refuse_global: str | None = None
        self.fail_engage_times = 0
        self._globals: dict[str, object] = {}
        # what BLACS's plugin reports (a test sets a paused queue, devices in error ...)
        self.blacs = BlacsReport(instance="fake", paused=False, status="Idle", queued=0)
        self.recovered = 0

    def observe(self) -> LabObservation:
        if not self.reachable:
            reason = "runmanager at localhost:42523 does not answer"
            return LabObservation(reason, None, "BLACS did not answer")
        return LabObservation(None, self.blacs)

    def recover(self) -> dict[str, Any]:
        if not self.reachable:
            raise LabUnavailable("BLACS did not answer")
        self.calls.append(("recover", None))
        self.recovered += 1
        restarted = [d.name for d in self.blacs.devices_in_error]
        self.blacs = dataclasses.replace(self.blacs, paused=False, devices_in_error=())
        return {"ok": True, "restarted": restarted, "still_in_error": [], "unpaused": True}

    def set_globals(self, values: Mapping[str, object]) -> None:
        if self.refuse_global is not None and self.refuse_global in values:
            raise LabRejected(f"Global {self.refuse_global} not found in any active group")
        self._globals = dict(values)
        self.calls.append(("set_globals", dict(values)))

    def set_labscript_file(self, path: Path) -> None:
        self.calls.append(("set_labscript_file", path))

    def set_shot_output_folder(self, path: Path) -> None:
        self.calls.append(("set_shot_output_folder", path))

    def n_shots(self) -> int:
        indices = self._globals.get("shot_indices")
        if isinstance(indices, list):
            return len(indices)
        shots = self._globals["shots"]
        assert isinstance(shots, int)
        return shots

    def engage(self) -> None:
        if self.fail_engage_times:
            self.fail_engage_times -= 1
            raise LabUnavailable("runmanager timed out")
        self.calls.append(("engage", None))

    def withdraw(self, folders: Sequence[Path], *, abort: bool) -> Withdrawal:
        if not self.reachable:
            raise LabUnavailable("BLACS did not answer")
        self.calls.append(("withdraw", (list(folders), abort)))
        return Withdrawal(removed=len(folders), aborted=None)

    def engaged(self) -> list[dict[str, object]]:
        """The globals of every engaged experiment, in order."""
        result, current = [], {}
        for name, arg in self.calls:
            if name == "set_globals":
                current = arg
            elif name == "engage":
                result.append(current)
        return result
