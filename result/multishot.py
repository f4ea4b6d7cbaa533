"""Multi-shot routines: once a job is complete, analysis of all its shots at once.

``result.multishot_routines`` names them, ``module:function``, resolved like the single-shot
``result.routines`` (:func:`result.analysis.load_routines`; one that cannot be imported is a
configuration error when the daemon starts). They run in order once a job is complete,
after its CSVs are written and before its result JSON is (:mod:`result.finishing`), in the
result daemon's process, and again when ``reprocess`` rewrites a job's outputs.

**The contract**: ``function(job: MultishotInput) -> Mapping[str, bytes]``.

The input (:class:`MultishotInput`) carries

- ``job_id``, ``backend`` (the machine's name, ``singlequdit``), ``finished_at`` (epoch
  seconds: when the job was complete; a reprocessed job keeps the time it was done first);
- ``frames``: experiment name to that experiment's DataFrame, the one written to its CSV
  (lyse's, hierarchical columns; the memory routine's ``memory`` column in it), the
  experiments in index order (``experiment_0``, ``experiment_1``, ..., ``experiment_10``);
- ``frame``: the whole job, those frames one after the other with an ``experiment`` column
  first (the experiment's name; shallower columns padded with ``""`` as lyse pads them);
- ``memory``: experiment name to its shots' memory entries in shot order, the strings of the
  result JSON (one value per ``measure``, separated by spaces; ``""`` when nothing was
  measured): the ``memory`` column of the frames, taken from the ledger;
- ``experiments``: experiment name to its object in the accepted job file (``instructions``,
  ``num_wires``, ``shots``, ...: the job format), or ``{}`` when the file is gone (pruned)
  or cannot be read. Validated when the job was accepted, but read again from a file: a
  routine checks each value it uses.

The routine returns file name to content (``bytes``). Each file is written atomically and
durably (:func:`spooler.core.fsutil.write_atomic`) into the job's store folder
``sds/<job_id>/``, beside the CSVs, and named in the result JSON's ``header``::

    "artefacts": {"<job_id>.png": "/mnt/sds/<job_id>/<job_id>.png"},
    "artefacts_failed": {"mymodule:summary": "ValueError: ..."}

A name must be *plain*: letters, digits, ``.``, ``_``, ``-``, at most 128 characters, not
starting with a dot or a dash nor ending like a temporary file (``.tmp``, ``~``), neither an
experiment's CSV or shot folder nor a file another routine made for this job; otherwise the
routine's whole output is refused (nothing of it written) with an error naming the file.

**A routine that fails** (raises, returns something else than names to bytes, a name
refused, a file that cannot be written) loses nothing else: the job still ends ``DONE``
with its CSVs and result JSON (the physicist's data), the other routines run, the failure is
logged with the job id and traceback, and ``artefacts_failed`` in the result's header names
the routine with the message (so does the job's DONE note). Files of that routine written
before a write failed are kept and named. A job that ends ``ERROR`` gets no routine run.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from result.analysis import Routine, load_routines
from spooler.core.errors import LabspoolError, describe_exception
from spooler.core.fsutil import fsync_dir, is_ignored_name, write_atomic
from spooler.core.logs import for_job

__all__ = [
    "SETTING",
    "Artefacts",
    "MultishotError",
    "MultishotInput",
    "experiment_order",
    "job_frame",
    "load_multishot",
    "run_multishot",
]

log = logging.getLogger(__name__)

SETTING = "result.multishot_routines"

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_INDEX = re.compile(r"experiment_([0-9]+)")


class MultishotError(LabspoolError):
    """A routine's output is refused; the message names the routine and the file."""


@dataclass(frozen=True)
class MultishotInput:
    job_id: str
    backend: str
    finished_at: float
    frames: dict[str, Any]  # experiment name -> pandas.DataFrame, in index order
    frame: Any  # pandas.DataFrame of the whole job, with an `experiment` column
    memory: dict[str, list[str]] = field(default_factory=dict)
    experiments: dict[str, Any] = field(default_factory=dict)  # the job file's, or {}


@dataclass
class Artefacts:
    """What the routines made (file name to its path on the store) and which failed (the
    routine's spec to the message)."""

    made: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def header(self) -> dict[str, Any]:
        """The result JSON's header entries."""
        return {
            "artefacts": {name: str(path) for name, path in self.made.items()},
            "artefacts_failed": dict(self.failed),
        }


def load_multishot(specs: tuple[str, ...]) -> list[Routine]:
    return load_routines(specs, setting=SETTING)


def experiment_order(names: list[str]) -> list[str]:
    """``experiment_0, experiment_1, ..., experiment_10`` (others after, as given)."""

    def key(item: tuple[int, str]) -> tuple[int, int]:
        position, name = item
        match = _INDEX.fullmatch(name)
        return (0, int(match[1])) if match else (1, position)

    return [name for _, name in sorted(enumerate(names), key=key)]


def job_frame(frames: Mapping[str, Any]) -> Any:
    """The experiments' frames one after the other, an ``experiment`` column first."""
    import pandas

    depth = max((f.columns.nlevels for f in frames.values()), default=1)
    parts = []
    for name, frame in frames.items():
        part = frame.copy()
        if depth > 1:
            part.columns = pandas.MultiIndex.from_tuples(
                [_padded(column, depth) for column in part.columns]
            )
        part.insert(0, _padded("experiment", depth) if depth > 1 else "experiment", name)
        parts.append(part)
    if not parts:
        return pandas.DataFrame({"experiment": pandas.Series([], dtype=object)})
    return pandas.concat(parts, ignore_index=True, sort=False)


def _padded(column: Any, depth: int) -> tuple[Any, ...]:
    key = column if isinstance(column, tuple) else (column,)
    return key + ("",) * (depth - len(key))


def run_multishot(
    routines: list[Routine], job: MultishotInput, store: Path, *, reserved: set[str]
) -> Artefacts:
    """Run *routines* on *job*, write their files into *store* (durably: the folder synced
    once, at the end). *reserved*: names no routine may take (the CSVs, shot folders)."""
    artefacts = Artefacts()
    logger = for_job(log, job.job_id)
    for routine in routines:
        started = time.monotonic()
        try:
            files = _checked(routine, routine.function(job), reserved | set(artefacts.made))
        except Exception as exc:
            message = str(exc) if isinstance(exc, MultishotError) else describe_exception(exc)
            artefacts.failed[routine.spec] = message
            logger.error(
                "multi-shot routine %s failed: %s",
                routine.spec,
                message,
                exc_info=not isinstance(exc, MultishotError),
            )
            continue
        for name, content in files.items():
            path = store / name
            try:
                write_atomic(path, content, sync_dir=False)
            except OSError as exc:
                message = f"cannot write {name}: {describe_exception(exc)}"
                artefacts.failed[routine.spec] = message
                logger.error("multi-shot routine %s: %s", routine.spec, message)
                break
            artefacts.made[name] = path
        logger.info(
            "multi-shot routine %s: %s in %.2f s",
            routine.spec,
            ", ".join(files) or "no file",
            time.monotonic() - started,
        )
    if artefacts.made:
        fsync_dir(store)
    return artefacts


def _checked(routine: Routine, output: object, taken: set[str]) -> dict[str, bytes]:
    """*output* as name to bytes, or a :class:`MultishotError` naming what is wrong."""
    if not isinstance(output, Mapping):
        raise MultishotError(
            f"{routine.spec} returned {type(output).__name__}, not a mapping of file name to bytes"
        )
    files: dict[str, bytes] = {}
    for name, content in output.items():
        if not isinstance(name, str) or not is_plain_artefact(name):
            raise MultishotError(
                f"{routine.spec} returned a file name that is refused: {name!r} (plain names "
                "only: letters, digits, '.', '_', '-', at most 128 characters, no leading "
                "dot or dash, not a temporary file's); none of its files was written"
            )
        if name in taken:
            raise MultishotError(
                f"{routine.spec} returned {name!r}, a name already taken in the job's store "
                "folder (a CSV, a shot folder, another routine's file); none of its files "
                "was written"
            )
        if not isinstance(content, bytes | bytearray | memoryview):
            raise MultishotError(
                f"{routine.spec} returned {type(content).__name__} for {name!r}, not bytes; "
                "none of its files was written"
            )
        files[name] = bytes(content)
    return files


def is_plain_artefact(name: str) -> bool:
    """A file name a routine may write into a job's store folder."""
    return _PLAIN.fullmatch(name) is not None and not is_ignored_name(name)
