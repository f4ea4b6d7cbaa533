"""Pausing the spooler: kept in the job store, so a pause survives restarts.

A pause stops the spooler taking new jobs from the queue; what it engaged runs to the end.
``pause --at TIME`` is a scheduled stop: until TIME jobs still start, but only those whose
estimated finish is before TIME (pychron's "stop at"); at TIME it becomes a plain pause.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from spooler.core.store import Reader, Transaction
from spooler.core.timestamps import iso_time

__all__ = ["PauseState", "read_pause", "write_pause"]

_KEY = "pause"


@dataclass(frozen=True, slots=True)
class PauseState:
    since: float  # when it was asked for
    by: str  # who asked (user@host)
    reason: str = ""
    at: float | None = None  # a scheduled stop: jobs finishing after this do not start

    def active(self, now: float) -> bool:
        """A full stop: nothing new starts."""
        return self.at is None or now >= self.at

    def allows(self, now: float, estimated_finish: float | None) -> bool:
        """Whether a job estimated to finish at *estimated_finish* may start now."""
        if self.active(now):
            return False
        assert self.at is not None
        return estimated_finish is not None and estimated_finish <= self.at

    def describe(self) -> str:
        if self.at is None:
            text = f"paused by {self.by} at {iso_time(self.since)}"
        else:
            text = f"stop scheduled by {self.by} for {iso_time(self.at)}"
        return f"{text}: {self.reason}" if self.reason else text


def read_pause(reader: Reader) -> PauseState | None:
    raw = reader.meta(_KEY)
    return None if raw is None else PauseState(**json.loads(raw))


def write_pause(tx: Transaction, state: PauseState | None) -> None:
    tx.set_meta(_KEY, None if state is None else json.dumps(asdict(state)))
