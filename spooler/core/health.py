"""The machine's health: one record in the job store that every view reads.

The spooler's monitor (:mod:`spooler.pipeline.monitor`) looks at the machine every
``lab.health_interval_s``: runmanager answering, BLACS and its labspool plugin answering, what
the plugin sees (BLACS's queue paused or not, device tabs in error with their messages, the
shot running), the shot folder and the store taking files and having room. What is wrong is a
list of :class:`Reason` (component, message, since when); the machine is *operational* when
the list is empty. The record changes only through :meth:`HealthMonitor.record
<spooler.pipeline.monitor.HealthMonitor>`; ``labspool lab status``, ``labspool status``, the live
page,
the gateway's ``get_backend_status`` and the metrics all read :func:`read_health`.

A record whose ``last_check`` is older than :data:`STALE_AFTER_S` says nothing of the machine
now (the spooler is stopped): it is shown as not operational, with that reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spooler.core.store import HealthRow, Reader

__all__ = [
    "FAULT_SEEN_KEY",
    "STALE_AFTER_S",
    "BlacsReport",
    "DeviceError",
    "Health",
    "Reason",
    "read_health",
]

STALE_AFTER_S = 60.0  # a record not refreshed for this long is not believed
# the job store's meta key of the device fault last counted (a pause counted once); cleared
# when BLACS runs again, and by ``labspool lab recover``
FAULT_SEEN_KEY = "lab_fault_seen"


@dataclass(frozen=True, slots=True)
class Reason:
    """One thing wrong with the machine."""

    component: str  # runmanager, blacs, device:<name>, shot_folder, store, spooler
    message: str
    since: float  # wall clock, when it was first seen

    def as_dict(self) -> dict[str, Any]:
        return {"component": self.component, "message": self.message, "since": self.since}


@dataclass(frozen=True, slots=True)
class Health:
    operational: bool
    reasons: tuple[Reason, ...]
    since: float | None  # when it became (not) operational; None: never looked at
    last_check: float | None

    @property
    def status_msg(self) -> str:
        """One line for a person: what is wrong, or that all is well."""
        if self.since is None:
            return "the machine has not been looked at yet (is the spooler running?)"
        if self.operational:
            return "operational"
        return "; ".join(f"{r.component}: {r.message}" for r in self.reasons) or "not operational"

    @property
    def waiting_note(self) -> str:
        """What a waiting job's detail says."""
        return f"Waiting for the machine: {self.status_msg}"


def decode_reasons(text: str) -> tuple[Reason, ...]:
    try:
        items = json.loads(text)
        return tuple(
            Reason(str(i["component"]), str(i["message"]), float(i["since"])) for i in items
        )
    except (ValueError, TypeError, KeyError):
        return (Reason("spooler", "the recorded health is unreadable", 0.0),)


def encode_reasons(reasons: Sequence[Reason]) -> str:
    return json.dumps([r.as_dict() for r in reasons], sort_keys=True)


def from_row(row: HealthRow | None, now: float) -> Health:
    if row is None:
        return Health(False, (), None, None)
    reasons = decode_reasons(row.reasons)
    if now - row.last_check > STALE_AFTER_S:
        stale = Reason(
            "spooler",
            f"the machine was last looked at {now - row.last_check:.0f} s ago "
            "(is the spooler running?)",
            row.last_check,
        )
        # not operational since it was last seen operational (or since it went down)
        since = row.last_check if row.operational else row.since
        return Health(False, (*reasons, stale), since, row.last_check)
    return Health(row.operational, reasons, row.since, row.last_check)


def read_health(read: Reader, now: float) -> Health:
    """The machine's health as the spooler last recorded it, judged at *now* (wall clock)."""
    return from_row(read.health(), now)


# -- what BLACS's labspool plugin reports --------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceError:
    name: str
    message: str  # the tab's error message as text, its first lines


@dataclass(frozen=True, slots=True)
class BlacsReport:
    """BLACS as its labspool plugin sees it (the control channel's ``hello``)."""

    instance: str  # changes whenever BLACS starts again
    paused: bool
    status: str  # BLACS's queue status text
    queued: int
    queued_folders: dict[str, int] = field(default_factory=dict)  # shot folder -> shots
    head: str | None = None  # the first shot of the queue
    running: str | None = None
    running_since: float | None = None
    devices_in_error: tuple[DeviceError, ...] = ()
    manager_alive: bool = True  # BLACS's queue manager thread runs

    @classmethod
    def parse(cls, answer: dict[str, Any]) -> BlacsReport:
        """From the plugin's answer (an older plugin's answer lacks most keys)."""
        folders = answer.get("queued_folders") or {}
        errors = answer.get("devices_in_error") or []
        return cls(
            instance=str(answer.get("instance") or ""),
            paused=bool(answer.get("paused", False)),
            status=_text(answer.get("status")) or "",
            queued=int(answer.get("queued") or 0),
            queued_folders={str(k): int(v) for k, v in folders.items()},
            head=_text(answer.get("head")),
            running=_text(answer.get("running")),
            running_since=(
                float(answer["running_since"])
                if isinstance(answer.get("running_since"), (int, float))
                else None
            ),
            devices_in_error=tuple(
                DeviceError(str(e.get("name")), _text(e.get("message")) or "")
                for e in errors
                if isinstance(e, dict)
            ),
            manager_alive=answer.get("manager_alive") is not False,
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)
