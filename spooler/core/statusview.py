"""``labspool status``: the jobs as a table or as JSON, and the live view (``--watch``).

Everything shown comes from the job store at the moment of showing (the status files are
the same documents as of their last change), so elapsed times and estimates are current, all
of it read in one snapshot of the store.

A listing of every job (:func:`write_table`, :func:`write_json`) is read and written a page
at a time (:mod:`spooler.core.statuspages`): what it costs grows with the jobs listed, it
holds one page of them, and the first lines come out before the last jobs are read; a
:class:`Progress` line on standard error says how far it is. The table's columns are as wide
as the widest cell of the rows written so far (a page at a time: a wider cell further down
widens the rows from its page on). One job's document (:func:`snapshot` of a job) and the
live view (the running jobs, the queue and the last few others: :func:`live`) cost the same
however many jobs ended before.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from spooler.core.health import Health, read_health
from spooler.core.pause import PauseState, read_pause
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.statuspages import (
    ACTIVE,
    PAGE,
    Progress,
    by_seq,
    documents,
    last_of,
    pages,
    queue,
)
from spooler.core.store import JobRecord, JobStore, Reader
from spooler.core.timestamps import iso_time

__all__ = [
    "Progress",
    "Selection",
    "Snapshot",
    "live",
    "local_time",
    "machine_document",
    "machine_line",
    "render",
    "render_job",
    "snapshot",
    "table_lines",
    "watch",
    "write_json",
    "write_table",
]

BAR_WIDTH = 24
HEAD = ("POS", "JOB", "USER", "STATE", "SHOTS", "START", "FINISH", "AGE")
_OTHERS = tuple(s for s in JobState if s not in ACTIVE)  # the table's rows after the queue


@dataclass(frozen=True)
class Snapshot:
    documents: list[dict[str, Any]]
    pause: PauseState | None
    now: float
    health: Health | None = None  # None: no job store yet


@dataclass(frozen=True)
class Selection:
    """The jobs a listing shows: those in *states* (None: in any), and of them only the
    last *last* that came (None: all; the table: of those neither running nor queued)."""

    states: frozenset[JobState] | None = None
    last: int | None = None

    def chosen(self, states: Iterable[JobState]) -> list[JobState]:
        """Those of *states* that are shown."""
        return [s for s in states if self.states is None or s in self.states]


@dataclass(frozen=True)
class _Opened:
    reader: Reader | None  # None: no job store yet
    pause: PauseState | None
    health: Health | None
    now: float


@contextmanager
def _opened(settings: Settings, now: float | None) -> Iterator[_Opened]:
    """The job store in one snapshot (never created here), with the pause and the health."""
    now = time.time() if now is None else now
    if not settings.folders.database.exists():
        yield _Opened(None, None, None, now)
        return
    store = JobStore(settings.folders.database)
    try:
        with store.snapshot() as reader:
            yield _Opened(reader, read_pause(reader), read_health(reader, now), now)
    finally:
        store.close()


def snapshot(
    settings: Settings, job_id: str | None = None, *, now: float | None = None
) -> Snapshot:
    """The document of *job_id* (none: no such job), or of every job in the order they
    came, held in memory (the command writes them as it reads them: :func:`write_json`)."""
    with _opened(settings, now) as view:
        found: list[dict[str, Any]] = []
        if view.reader is not None:
            if job_id is not None:
                record = view.reader.get(job_id)
                records = [] if record is None else [record]
                found = documents(view.reader, view.now, records)
            else:
                for page in pages(view.reader, view.now, by_seq(view.reader, JobState)):
                    found += page
        return Snapshot(found, view.pause, view.now, view.health)


def live(settings: Settings, finished_max: int, *, now: float | None = None) -> Snapshot:
    """The live view's documents (no history): the running jobs, the queue, and the last
    *finished_max* of the other jobs."""
    with _opened(settings, now) as view:
        found: list[dict[str, Any]] = []
        if view.reader is not None:
            read = view.reader
            others = last_of(read, _OTHERS, finished_max)
            records = itertools.chain(read.running(), queue(read), others)
            for page in pages(read, view.now, records, history=False):
                found += page
        return Snapshot(found, view.pause, view.now, view.health)


def write_table(
    settings: Settings,
    out: TextIO,
    selection: Selection = Selection(),
    *,
    progress: Progress | None = None,
    now: float | None = None,
) -> None:
    """The machine's line, then the table of the jobs of *selection*, written as read."""
    with _opened(settings, now) as view:
        out.write(machine_line(view.health, view.now) + "\n")
        if view.reader is None:
            out.write("no jobs\n")
            return
        read = view.reader
        running = read.running() if selection.chosen([JobState.RUNNING]) else []
        queued = queue(read) if selection.chosen([JobState.QUEUED]) else iter(())
        others = _records(
            read, selection, _OTHERS, progress, also=selection.chosen([JobState.QUEUED])
        )
        shown = documents(read, view.now, running, history=False)
        rest = pages(
            read,
            view.now,
            itertools.chain(queued, others),
            history=False,
            done=None if progress is None else progress.update,
        )
        lines = table_lines(view.pause, shown, itertools.chain.from_iterable(rest), view.now)
        for line in lines:
            out.write(line + "\n")
        if progress is not None:
            progress.finish()


def _records(
    read: Reader,
    selection: Selection,
    states: Iterable[JobState],
    progress: Progress | None,
    *,
    also: Iterable[JobState] = (),
) -> Iterable[JobRecord]:
    """The jobs of the chosen *states* in the order they came (all, or the selection's last
    N), read as they are asked for; *progress* started on their number, and on the jobs of
    *also* listed with them."""
    chosen = selection.chosen(states)
    if progress is not None:
        counts = read.count_by_state()
        total = sum(counts[s] for s in chosen)
        total = total if selection.last is None else min(total, selection.last)
        progress.start(total + sum(counts[s] for s in also))
    if selection.last is None:
        return by_seq(read, chosen)
    return last_of(read, chosen, selection.last)


def write_json(
    settings: Settings,
    out: TextIO,
    selection: Selection = Selection(),
    *,
    lines: bool = False,
    progress: Progress | None = None,
    now: float | None = None,
) -> None:
    """The documents of the jobs of *selection* in the order they came, as one JSON list
    (as ``json.dumps(..., indent=1)`` writes it), written as read; with *lines*, a
    document a line instead (JSON lines: compact, read a line at a time)."""
    with _opened(settings, now) as view:
        if not lines:
            out.write("[")
        written = 0
        if view.reader is not None:
            read = view.reader
            records = _records(read, selection, JobState, progress)
            done = None if progress is None else progress.update
            for page in pages(read, view.now, records, done=done):
                for document in page:
                    if lines:
                        out.write(json.dumps(document) + "\n")
                    else:
                        text = json.dumps(document, indent=1).replace("\n", "\n ")
                        out.write(("\n " if not written else ",\n ") + text)
                    written += 1
            if progress is not None:
                progress.finish()
        if not lines:
            out.write("\n]\n" if written else "]\n")


def render(view: Snapshot, *, finished_max: int | None = None) -> str:
    """The table: running jobs with a progress bar, the queue in order, then finished jobs."""
    running = [d for d in view.documents if d["status"] == "RUNNING"]
    queued = sorted(
        (d for d in view.documents if d["status"] == "QUEUED"), key=lambda d: d["queue_position"]
    )
    others = [d for d in view.documents if d["status"] not in ("RUNNING", "QUEUED")]
    if finished_max is not None:
        others = others[-finished_max:]
    return "\n".join(table_lines(view.pause, running, queued + others, view.now))


def table_lines(
    pause: PauseState | None,
    running: Iterable[dict[str, Any]],
    rows: Iterable[dict[str, Any]],
    now: float,
) -> Iterator[str]:
    """The table's lines: the pause, the *running* jobs with a progress bar, then a row for
    each of *rows* (the queue in order, then the others), a page of rows at a time."""
    if pause is not None:
        yield f"spooler {pause.describe()}  (labspool resume)"
    shown = False
    for doc in running:
        shown = True
        expected = doc["shots_expected"] or doc["shots_requested"] or 0
        done = doc["shots_done"]
        filled = 0 if not expected else min(BAR_WIDTH, round(BAR_WIDTH * done / expected))
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        yield (
            f"RUNNING  {doc['job_id']}  [{bar}] {done}/{expected or '?'}  "
            f"{_duration(doc['elapsed_s'])} elapsed, done {_clock(doc['estimated_finish'])}"
        )
    cells = (_row(doc, now) for doc in rows)
    widths = [0] * len(HEAD)
    headed = False
    while chunk := list(itertools.islice(cells, PAGE)):
        if not headed:
            chunk.insert(0, HEAD)
        shown = headed = True
        widths = [max(w, *(len(row[i]) for row in chunk)) for i, w in enumerate(widths)]
        for row in chunk:
            yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
    if not shown:
        yield "no jobs"


def _row(doc: dict[str, Any], now: float) -> tuple[str, ...]:
    pos = doc["queue_position"]
    return (
        "" if pos is None else str(pos),
        doc["job_id"],
        doc["user"] or "-",
        doc["status"],
        _shots(doc),
        _clock(doc["estimated_start"]) if doc["status"] == "QUEUED" else "",
        _clock(doc["estimated_finish"]),
        _duration(now - _timestamp(doc["created_at"])),
    )


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
        view = live(settings, max(3, height // 3))
        text = render(view)
        machine = machine_line(view.health, view.now)
        if out.isatty():
            out.write("\x1b[H\x1b[2J")
        out.write(f"labspool status  {datetime.now().strftime('%H:%M:%S')}\n{machine}\n{text}\n")
        out.flush()
        shown += 1
        if count is None or shown < count:
            stop.wait(interval_s)


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
