"""``labspool status``: the jobs as a table, and the live view (``--watch``).

Everything shown comes from the job store at the moment of showing (the status files are
the same documents as of their last change), so elapsed times and estimates are current.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from spooler.core.estimates import estimate_jobs
from spooler.core.health import Health, read_health
from spooler.core.pause import PauseState, read_pause
from spooler.core.settings import Settings
from spooler.core.statusfile import status_document
from spooler.core.store import JobStore
from spooler.core.timestamps import iso_time

__all__ = [
    "Snapshot",
    "local_time",
    "machine_document",
    "machine_line",
    "render",
    "snapshot",
    "watch",
]

BAR_WIDTH = 24


@dataclass(frozen=True)
class Snapshot:
    documents: list[dict[str, Any]]
    pause: PauseState | None
    now: float
    health: Health | None = None  # None: no job store yet


def snapshot(
    settings: Settings, job_id: str | None = None, *, now: float | None = None
) -> Snapshot:
    now = time.time() if now is None else now
    if not settings.folders.database.exists():
        return Snapshot([], None, now)
    store = JobStore(settings.folders.database)
    try:
        with store.snapshot() as reader:
            records = [reader.require(job_id)] if job_id else reader.jobs()
            positions = reader.queue_positions()
            estimates = estimate_jobs(reader, now, {r.job_id for r in records})
            documents = [status_document(reader, r, positions, estimates, now) for r in records]
            pause = read_pause(reader)
            health = read_health(reader, now)
    finally:
        store.close()
    return Snapshot(documents, pause, now, health)


def render(view: Snapshot, *, finished_max: int | None = None) -> str:
    """The table: running jobs with a progress bar, the queue in order, then finished jobs."""
    lines = []
    if view.pause is not None:
        lines.append(f"spooler {view.pause.describe()}  (labspool resume)")
    running = [d for d in view.documents if d["status"] == "RUNNING"]
    queued = sorted(
        (d for d in view.documents if d["status"] == "QUEUED"), key=lambda d: d["queue_position"]
    )
    others = [d for d in view.documents if d["status"] not in ("RUNNING", "QUEUED")]
    if finished_max is not None:
        others = others[-finished_max:]
    for doc in running:
        expected = doc["shots_expected"] or doc["shots_requested"] or 0
        done = doc["shots_done"]
        filled = 0 if not expected else min(BAR_WIDTH, round(BAR_WIDTH * done / expected))
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        lines.append(
            f"RUNNING  {doc['job_id']}  [{bar}] {done}/{expected or '?'}  "
            f"{_duration(doc['elapsed_s'])} elapsed, done {_clock(doc['estimated_finish'])}"
        )
    rows = [("POS", "JOB", "USER", "STATE", "SHOTS", "START", "FINISH", "AGE")]
    for doc in queued + others:
        pos = doc["queue_position"]
        rows.append(
            (
                "" if pos is None else str(pos),
                doc["job_id"],
                doc["user"] or "-",
                doc["status"],
                _shots(doc),
                _clock(doc["estimated_start"]) if doc["status"] == "QUEUED" else "",
                _clock(doc["estimated_finish"]),
                _duration(view.now - _timestamp(doc["created_at"])),
            )
        )
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            lines.append(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
    if not view.documents:
        lines.append("no jobs")
    return "\n".join(lines)


def render_job(doc: dict[str, Any]) -> str:
    keys = ("job_id", "status", "attempt", "detail", "error_message", "queue_position")
    lines = [f"{key:<17} {doc[key]}" for key in keys]
    lines.append(f"{'shots':<17} {_shots(doc)}")
    for key in ("elapsed_s", "estimated_start", "estimated_finish"):
        lines.append(f"{key:<17} {doc[key]}")
    return "\n".join(lines)


# -- the machine's health ---------------------------------------------------------------------


def machine_document(health: Health) -> dict[str, Any]:
    """The machine's health for a JSON answer, its times as ISO 8601 (UTC), as the status
    files write them."""
    return {
        "operational": health.operational,
        "status_msg": health.status_msg,
        "reasons": [
            {"component": r.component, "message": r.message, "since": iso_time(r.since)}
            for r in health.reasons
        ],
        "since": iso_time(health.since),
        "last_check": iso_time(health.last_check),
    }


def machine_line(health: Health | None, now: float, *, width: int | None = None) -> str:
    """The status view's header: the machine operational, or since when not and why, cut
    to *width* (the terminal's, by default)."""
    if health is None:
        text = "machine: no job store yet (the spooler has not run)"
    elif health.operational:
        text = "machine: operational"
    else:
        when = "" if health.since is None else f" since {local_time(health.since, now)}"
        text = f"machine: NOT OPERATIONAL{when}: {health.status_msg}"
    width = shutil.get_terminal_size((100, 40)).columns if width is None else width
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def local_time(timestamp: float, now: float) -> str:
    """A wall-clock time in local time: the time of day, with the date unless it is today."""
    at = datetime.fromtimestamp(timestamp)
    if at.date() == datetime.fromtimestamp(now).date():
        return at.strftime("%H:%M:%S")
    return at.strftime("%Y-%m-%d %H:%M:%S")


def watch(
    settings: Settings,
    *,
    interval_s: float = 1.0,
    count: int | None = None,
    out: TextIO = sys.stdout,
    stop: threading.Event | None = None,
) -> None:
    """Redraw the table every *interval_s* until interrupted (or *count* times)."""
    stop = stop or threading.Event()
    shown = 0
    while not stop.is_set() and (count is None or shown < count):
        height = shutil.get_terminal_size((100, 40)).lines
        view = snapshot(settings)
        text = render(view, finished_max=max(3, height // 3))
        machine = machine_line(view.health, view.now)
        if out.isatty():
            out.write("\x1b[H\x1b[2J")
        out.write(f"labspool status  {datetime.now().strftime('%H:%M:%S')}\n{machine}\n{text}\n")
        out.flush()
        shown += 1
        if count is None or shown < count:
            stop.wait(interval_s)


def as_json(view: Snapshot, single: bool) -> str:
    return json.dumps(view.documents[0] if single else view.documents, indent=1)


def _shots(doc: dict[str, Any]) -> str:
    expected = doc["shots_expected"] or doc["shots_requested"]
    return "" if expected is None else f"{doc['shots_done']}/{expected}"


def _timestamp(iso: str | None) -> float:
    return 0.0 if iso is None else datetime.fromisoformat(iso).timestamp()


def _clock(iso: str | None) -> str:
    if iso is None:
        return "?"
    return datetime.fromtimestamp(_timestamp(iso)).strftime("%H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    # the unit, then the next smaller one: 2d03 (hours), 1h05 (minutes), 4m09 (seconds)
    for unit, size, smaller in (("d", 86400, 3600), ("h", 3600, 60), ("m", 60, 1)):
        if seconds >= size:
            return f"{seconds // size}{unit}{(seconds % size) // smaller:02d}"
    return f"{seconds}s"
