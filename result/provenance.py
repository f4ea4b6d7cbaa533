"""Provenance: what a job's result was made with, named in its result file and status file.

Once a job is complete (and again when ``labspool-result reprocess`` rewrites its outputs),
:func:`job_provenance` makes one JSON object, written as ``provenance`` into the result
file's ``header`` (qiskit's ``Result.from_dict`` keeps the header's keys as they are) and
into the store (:mod:`spooler.core.store.provenance`), from which the job's status file shows
it once the job is ``DONE``::

    "provenance": {
      "labspool_version": "0.1.0",
      "backend": {"name": "singlequdit", "version": "0.0.1"},
      "apparatus_header_sha256": "9f2c...",
      "connection_table_sha256": "41ab...",
      "routines": "result.routines.singlequdit:count_atoms@1a2b3c4d5e6f",
      "multishot_routines": "result.routines.picture:draw_job@77e0c1d2a3b4",
      "shots": {"count": 9, "first": "2026-03-14T15:09:26.120+00:00",
                "last": "2026-03-14T15:09:28.034+00:00", "clock": "run time"}
    }

- ``labspool_version``: of the labspool that wrote the result (the installed distribution's);
  ``backend``: the machine's name and version, as in the result's ``backend_name`` and
  ``backend_version``.
- ``apparatus_header_sha256``: of the apparatus header the shots ran with, read back from the
  shot files: each shot file holds the labscript file it was compiled from (its ``script``
  dataset), which is the header followed by labspool's line
  ``# ---- rendered by labspool: one call per instruction ----`` and the calls; the hash is of
  the bytes before that line. It equals ``sha256sum`` of the header file when the file ends
  with a newline (labspool adds one when it lacks it).
- ``connection_table_sha256``: of the ``connection table`` dataset the shots were compiled
  with (:func:`connection_table_sha256`: its column names, then every field of every row).
  The same function on BLACS's compiled connection table (``connection_table.h5``) gives
  the same hash when the shots' table is BLACS's.
- Both are read from the first and the last archived shot of each experiment (a job of 15
  experiments opens 30 files, not every shot). A value is one string when the shots read
  agree, the list of the different values (in shot order) when they do not, null when no
  shot could be read (each failure logged with the job id).
- ``routines``: the single-shot routines' version as the ledger records it for each archived
  shot (:func:`result.analysis.version_of`: each routine with the SHA-256 of its module's
  source, 12 hex digits): one string, or the list of those that differ; ``multishot_routines``
  the multi-shot routines that ran now, in the same form ("" when none is configured).
- ``shots``: how many were archived and when the first and the last was made: BLACS's
  ``run time`` of each shot (lyse reads it in the machine's local zone; written here in UTC),
  ``clock`` ``"run time"``; when a shot has none, the times the result daemon received the
  shots are taken instead, ``clock`` ``"received"``.

Nothing in it depends on when it was written (the store keeps that beside it): outputs
written again from the same shots with the same routines are the same bytes.

Should making it fail for a fault of labspool's, the job is still done with its data, and
the provenance is ``{"error": "<what failed>"}`` (logged with the traceback).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from result.analysis import Routine, version_of
from spooler.core.backends import Backend
from spooler.core.errors import describe_exception
from spooler.core.logs import for_job
from spooler.core.store.shots import ShotRow
from spooler.core.timestamps import iso_time

__all__ = [
    "HEADER_MARKER",
    "connection_table_sha256",
    "header_sha256",
    "job_provenance",
    "labspool_version",
    "shot_marks",
]

log = logging.getLogger(__name__)

# spooler.pipeline.render.MARKER (the result daemon may not import the pipeline; a test
# checks that both are the same)
HEADER_MARKER = "# ---- rendered by labspool: one call per instruction ----"
_CUT = b"\n" + HEADER_MARKER.encode() + b"\n"


def labspool_version() -> str:
    try:
        return importlib.metadata.version("labspool")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def header_sha256(script: bytes) -> str | None:
    """The SHA-256 of the apparatus header in a rendered experiment file (None: the file was
    not rendered by labspool)."""
    at = script.rfind(_CUT)
    return None if at < 0 else hashlib.sha256(script[:at]).hexdigest()


def connection_table_sha256(table: Any) -> str:
    """The SHA-256 of a labscript ``connection table`` (the h5py dataset, or its array): its
    column names, then each field of each row, each as its length (8 bytes) and its bytes."""
    digest = hashlib.sha256()

    def add(value: object) -> None:
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)

    rows = table[()]
    for name in rows.dtype.names or ():
        add(name)
    for row in rows:
        for value in row if rows.dtype.names else (row,):
            add(value)
    return digest.hexdigest()


def shot_marks(path: Path) -> tuple[str | None, str | None]:
    """(header SHA-256, connection table SHA-256) of one shot file; None for what it lacks.
    OSError (and h5py's errors) for a file that cannot be read."""
    import h5py

    with h5py.File(path, "r") as shot:
        script = shot.get("script")
        header = None
        if isinstance(script, h5py.Dataset):
            text = script[()]
            if isinstance(text, str):
                text = text.encode("utf-8", "surrogatepass")
            header = header_sha256(text) if isinstance(text, bytes) else None
        table = shot.get("connection table")
        connection = connection_table_sha256(table) if isinstance(table, h5py.Dataset) else None
    return header, connection


def _one_or_all(values: Iterable[str | None]) -> str | list[str] | None:
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    if not distinct:
        return None
    return distinct[0] if len(distinct) == 1 else distinct


def _sampled(archived: list[ShotRow]) -> list[ShotRow]:
    """The first and the last archived shot of each experiment, in shot order."""
    by_experiment: dict[str | None, list[ShotRow]] = {}
    for row in archived:
        by_experiment.setdefault(row.experiment, []).append(row)
    chosen: list[ShotRow] = []
    for rows in by_experiment.values():
        rows = sorted(rows, key=lambda r: r.shot_index if r.shot_index is not None else -1)
        chosen.extend(rows[:1] if len(rows) == 1 else [rows[0], rows[-1]])
    return chosen


def _run_times(frames: Mapping[str, Any]) -> list[float] | None:
    """Every shot's ``run time`` (Unix time) from the experiments' DataFrames; None when a
    shot has none (or it is not a time with a zone, as lyse makes it)."""
    import pandas

    times: list[float] = []
    for frame in frames.values():
        columns = [c for c in frame.columns if (c[0] if isinstance(c, tuple) else c) == "run time"]
        if not columns:
            if len(frame):
                return None
            continue
        for value in frame[columns[0]]:
            if not isinstance(value, pandas.Timestamp) or value.tzinfo is None:
                return None
            stamp = value.timestamp()
            if not math.isfinite(stamp):
                return None
            times.append(stamp)
    return times


def job_provenance(
    *,
    job_id: str,
    backend: Backend,
    archived: list[ShotRow],
    frames: Mapping[str, Any],
    multishot: Iterable[Routine],
) -> dict[str, Any]:
    """The job's provenance (see the module's text) from its archived shots' ledger rows, the
    experiments' DataFrames and the multi-shot routines; never raises for a shot file."""
    headers: list[str | None] = []
    tables: list[str | None] = []
    for row in _sampled(archived):
        if not row.sds_path:
            continue
        try:
            header, table = shot_marks(Path(row.sds_path))
        except Exception as exc:  # the shot is archived and verified: say it, keep the rest
            for_job(log, job_id).warning(
                "provenance: cannot read %s: %s", row.sds_path, describe_exception(exc)
            )
            continue
        headers.append(header)
        tables.append(table)
    try:
        run_times = _run_times(frames)
    except Exception as exc:  # frames of an older labspool's rows, or of odd shots
        for_job(log, job_id).warning("provenance: no run times: %s", describe_exception(exc))
        run_times = None
    if run_times is None or len(run_times) != len(archived):
        times, clock = [r.received_at for r in archived], "received"
    else:
        times, clock = run_times, "run time"
    return {
        "labspool_version": labspool_version(),
        "backend": {"name": backend.name, "version": backend.version},
        "apparatus_header_sha256": _one_or_all(headers),
        "connection_table_sha256": _one_or_all(tables),
        "routines": _one_or_all(r.routines for r in archived),
        "multishot_routines": version_of(multishot),
        "shots": {
            "count": len(archived),
            "first": iso_time(min(times)) if times else None,
            "last": iso_time(max(times)) if times else None,
            "clock": clock,
        },
    }
