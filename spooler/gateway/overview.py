"""What the live page's overview shows: the jobs that wait or run, the last ones ended, the
quarantine's last items, each job's row in the queue's table.

Only the jobs shown are read: of those that wait or run a page at a time in queue order
(the running ones, the queue, those being admitted), counted per state and per user by
the store; of those ended the last few, by SQL. The limits are the page's
(:mod:`spooler.gateway.page`).
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spooler.core.errors import LabspoolError
from spooler.core.estimates import Estimate
from spooler.core.fsutil import read_regular_file
from spooler.core.states import JobState
from spooler.core.statusfile import status_fields
from spooler.core.store import JobRecord, QueuePlace, Reader

__all__ = [
    "ACTIVE_ORDER",
    "FINISHED",
    "active_jobs",
    "active_summary",
    "finished_jobs",
    "job_row",
    "public_pause",
    "quarantined_items",
]

FINISHED = (JobState.DONE, JobState.ERROR, JobState.CANCELLED)
ACTIVE_ORDER = (JobState.RUNNING, JobState.QUEUED, JobState.INITIALIZING)  # in the page's order


def active_jobs(
    reader: Reader,
    user: str | None,
    counts: Mapping[tuple[JobState, str | None], int],
    offset: int,
    limit: int,
) -> list[JobRecord]:
    """The jobs of *user* (everybody's: None) that wait or run, the running ones first (in
    the order they were engaged), then the queue in its order, then those being admitted:
    at most *limit* of them from the *offset*-th. Only those are read (the running ones
    are few: the dispatcher's look-ahead), and none for a state *counts* says is empty."""
    per_state = {state: 0 for state in ACTIVE_ORDER}
    for (state, _), count in counts.items():
        per_state[state] += count
    shown: list[JobRecord] = []
    skip = offset
    for state in ACTIVE_ORDER:
        if len(shown) >= limit:
            break
        if skip >= per_state[state]:
            skip -= per_state[state]
            continue
        wanted = limit - len(shown)
        if state is JobState.RUNNING:
            running = [r for r in reader.running() if user is None or r.submitter == user]
            shown += running[skip : skip + wanted]
        else:
            shown += reader.jobs_page(state, skip, wanted, user)
        skip = 0
    return shown


def active_summary(
    counts: Mapping[tuple[JobState, str | None], int],
    offset: int,
    shown: int,
    limit: int,
    *,
    everybody: bool,
) -> dict[str, Any]:
    """How many jobs wait or run (a user's: their own), and which of them are shown (at most
    *limit*); for an operator, per user too (the busiest first)."""
    by_state = {state.value: 0 for state in ACTIVE_ORDER}
    by_user: dict[str | None, dict[str, int]] = {}
    for (state, submitter), count in counts.items():
        by_state[state.value] += count
        row = by_user.setdefault(submitter, {s.value: 0 for s in ACTIVE_ORDER})
        row[state.value] += count
    total = sum(by_state.values())
    users = sorted(by_user.items(), key=lambda item: (-sum(item[1].values()), item[0] or ""))
    return {
        "total": total,
        "offset": offset,
        "shown": shown,
        "limit": limit,
        "more": max(total - offset - shown, 0),
        "by_state": by_state,
        "by_user": [{"user": name, **row, "total": sum(row.values())} for name, row in users]
        if everybody
        else [],
    }


def finished_jobs(
    reader: Reader, user: str | None, limit: int, *states: JobState
) -> list[JobRecord]:
    """The *limit* jobs of *user* (everybody's: None) that ended last, newest first."""
    return reader.last_ended(states or FINISHED, user, limit)


def quarantined_items(folder: Path, limit: int) -> list[dict[str, Any]]:
    """The last *limit* items the daemons gave up (their reason files), newest first."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".reason.json") and entry.is_file(follow_symlinks=False):
                    found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
    except OSError:
        return []
    shown = []
    for _, name in heapq.nlargest(limit, found):
        try:
            reason = json.loads(read_regular_file(folder / name, 1 << 20, what="a reason"))
            if not isinstance(reason, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError, LabspoolError) as exc:
            reason = {"item": name.removesuffix(".reason.json"), "reason": f"unreadable: {exc}"}
        keys = ("item", "reason", "job_id", "daemon", "at")
        shown.append({key: _short(reason.get(key)) for key in keys})
    return shown


def _short(value: Any, chars: int = 2000) -> str | None:
    return None if value is None else str(value)[:chars]


_ROW_KEYS = (
    "job_id",
    "status",
    "user",
    "queue_position",
    "attempt",
    "experiments",
    "shots_requested",
    "shots_expected",
    "shots_done",
    "elapsed_s",
    "estimated_start",
    "estimated_finish",
    "error_message",
    "updated_at",
)


def job_row(
    record: JobRecord,
    places: Mapping[str, QueuePlace],
    estimates: Mapping[str, Estimate],
    now: float,
) -> dict[str, Any]:
    """What the queue's table shows of a job: these fields of its status document
    (:func:`spooler.core.statusfile.status_fields`; its history is not shown here), and the last
    note of its detail ("Waiting for the machine: ...", "queued", ...)."""
    place = places.get(record.job_id)
    position = None if place is None else place.position
    fields = status_fields(record, position, estimates.get(record.job_id, Estimate()), now)
    notes = record.notes
    return {**{key: fields[key] for key in _ROW_KEYS}, "note": notes[-1] if notes else ""}


def public_pause(reason: str) -> str:
    return f"the machine is paused: {reason}" if reason else "the machine is paused"
