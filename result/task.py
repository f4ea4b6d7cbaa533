"""The work on one shot, wherever an executor runs it: a task in, what it found out.

A :class:`ShotTask` names the shot as it came (the local file BLACS wrote, or for
reprocessing the archived one) and where its archived copy goes. :func:`run_shot`:

1. checks the shot (an HDF5 labscript shot whose own globals name what its address says;
   :func:`result.addresses.check_shot`), unless it was checked before (reprocessing);
2. copies it to a *work copy* beside its place on the store, under a hidden name unique to
   this run of the task (``.<shot>.<random>.<suffix>``), and runs the analysis routines on
   that copy (lyse writes into the file it analyses; the shot itself stays untouched);
3. reads the copy's row of lyse's DataFrame (its paths those of the archived copy) and the
   copy's size and SHA-256.

It returns a :class:`ShotOutcome` and writes nothing but its own work copy, so a task run
twice (Dask may) changes nothing: the result daemon, the one writer of the ledger, the job
states and the final names on the store, takes one outcome, verifies its work copy against
the outcome's checksum and renames it into place. A routine that fails leaves a copy of the
shot as it came (archived as it came; its job ends ``ERROR``).

Nothing here is passed open between processes: the task opens its files itself, and all it
carries in and out is plain data (picklable for a process pool or Dask).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spooler.settings import GlobalNames

from .addresses import Address, BadAddress, DamagedShot, check_shot
from .analysis import AnalysisError, Routine, analyse, load_routines
from .archive import StoreUnavailable, checksum, is_transient

__all__ = [
    "ShotOutcome",
    "ShotTask",
    "routines_version",
    "run_shot",
    "shot_frame",
    "warm_up",
    "work_copies",
    "work_name",
]

# What an outcome says of the shot (ShotOutcome.kind)
ANALYSED = "analysed"  # the routines ran; the work copy carries their results
FAILED = "failed"  # a routine raised (error): the work copy is the shot as it came
REFUSED = "refused"  # the shot's globals name another job, shot or attempt (error)
DAMAGED = "damaged"  # not readable as a labscript shot (error)
UNAVAILABLE = "unavailable"  # the store or the suite's lock server failed: try again later
ON_STORE = "on store"  # nothing to analyse (analyse=False): the row of the archived copy


@dataclass(frozen=True)
class ShotTask:
    address: str  # the ledger's key of the shot
    source: str  # the shot as it came (or, reprocessing, the archived shot)
    target: str  # its place on the store: the work copy goes beside it
    routines: tuple[str, ...]
    memory_routine: str | None
    # (job_id, experiment, shot_index, attempt) the shot's own globals must name; None: the
    # shot was checked when it was archived (reprocessing)
    expect: tuple[str, str, int, int] | None = None
    names: GlobalNames = field(default_factory=GlobalNames)
    suffix: str = "work"  # of the work copy's name: the daemon's, or a reprocess's
    analyse: bool = True  # False: only the row and checksum of source (already on the store)


@dataclass(frozen=True)
class ShotOutcome:
    address: str
    kind: str
    work: str | None = None  # the work copy made (to be renamed to target, or removed)
    memory: str | None = None  # the shot's memory entry (the memory routine's "memory")
    error: str | None = None
    size: int | None = None  # of the work copy (or, ON_STORE, of source)
    sha256: str | None = None
    frame: bytes | None = None  # the shot's row of lyse's DataFrame, pickled
    version: str = ""  # routines_version of what ran
    worker: str = ""  # host:pid of the process that ran the task
    seconds: float = 0.0


def work_name(target: Path, suffix: str) -> Path:
    """A work copy's name beside *target*, unique to one run of a task."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:16]}.{suffix}")


def work_copies(target: Path, suffix: str) -> list[Path]:
    """Work copies of *target* left by runs of its tasks (with *suffix*)."""
    return sorted(target.parent.glob(f".{target.name}.*.{suffix}"))


_warm = False
_routines: dict[tuple[str, ...], list[Routine]] = {}
_versions: dict[tuple[str, ...], str] = {}


def warm_up() -> None:
    """Import the labscript suite and lyse in this process (once): the suite's ``h5_lock``
    before h5py, as it requires; a worker's zlock locks leased short."""
    global _warm
    if _warm:
        return
    import importlib

    from spooler.headless import headless

    from . import locklease

    for module in ("labscript_utils.h5_lock", "h5py", "lyse", "lyse.dataframe_utilities"):
        importlib.import_module(module)
    headless()  # the suite's import installed its Tk exception hook
    locklease.shorten()
    _warm = True


def _loaded(specs: tuple[str, ...]) -> list[Routine]:
    if specs not in _routines:
        _routines[specs] = load_routines(specs)
    return _routines[specs]


def routines_version(specs: tuple[str, ...]) -> str:
    """The routines *specs* as loaded in this process: each spec with the SHA-256 of its
    module's source (12 hex digits), joined by ``;``. The ledger keeps it per shot, so that
    reprocessing knows which shots still carry another version."""
    if specs not in _versions:
        parts = []
        for routine in _loaded(specs):
            module = sys.modules.get(getattr(routine.function, "__module__", "") or "")
            source = getattr(module, "__file__", None)
            try:
                digest = hashlib.sha256(Path(str(source)).read_bytes()).hexdigest()[:12]
            except OSError:
                digest = "unknown"
            parts.append(f"{routine.spec}@{digest}")
        _versions[specs] = ";".join(parts)
    return _versions[specs]


def run_shot(task: ShotTask) -> ShotOutcome:
    """Check, copy and analyse one shot (see the module's text); never raises for what the
    shot or the store did (that is in the outcome), only for a fault of labspool itself."""
    started = time.perf_counter()
    warm_up()
    outcome = _run(task)
    return ShotOutcome(
        **{
            **outcome,
            "address": task.address,
            "version": routines_version(task.routines) if task.analyse else "",
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "seconds": time.perf_counter() - started,
        }
    )


def _run(task: ShotTask) -> dict[str, Any]:
    source, target = Path(task.source), Path(task.target)
    if task.expect is not None:
        try:
            check_shot(Address(source, *task.expect), task.names)
        except BadAddress as exc:
            return {"kind": REFUSED, "error": str(exc)}
        except DamagedShot as exc:
            return {"kind": DAMAGED, "error": str(exc)}
        except StoreUnavailable as exc:
            return {"kind": UNAVAILABLE, "error": str(exc)}
    if not task.analyse:
        size, digest = checksum(source)
        return {
            "kind": ON_STORE,
            "memory": _saved_memory(source, task.memory_routine),
            "size": size,
            "sha256": digest,
            "frame": shot_frame(source, as_path=target),
        }
    work = work_name(target, task.suffix)
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, work)
        except OSError as exc:
            return {"kind": UNAVAILABLE, "error": f"cannot write the work copy {work}: {exc}"}
        kind, memory, error = ANALYSED, None, None
        try:
            results = analyse(work, _loaded(task.routines))
        except AnalysisError as exc:
            kind, error = FAILED, str(exc)
            shutil.copyfile(source, work)  # archived as it came, not half analysed
        else:
            value = results.get(task.memory_routine or "", {}).get("memory", "")
            memory = "" if value is None else str(value)
        size, digest = checksum(work)
        frame = shot_frame(work, as_path=target)
    except StoreUnavailable as exc:
        work.unlink(missing_ok=True)
        return {"kind": UNAVAILABLE, "error": str(exc)}
    except BaseException as exc:
        work.unlink(missing_ok=True)
        if isinstance(exc, Exception) and is_transient(exc):
            return {"kind": UNAVAILABLE, "error": f"zlock did not answer: {exc}"}
        raise
    return {
        "kind": kind,
        "work": str(work),
        "memory": memory,
        "error": error,
        "size": size,
        "sha256": digest,
        "frame": frame,
    }


def _saved_memory(path: Path, routine: str | None) -> str:
    """The memory entry an analysis saved in *path* before (lyse's place for results)."""
    import h5py

    with h5py.File(path, "r") as shot:
        group = shot.get(f"results/{routine}") if routine else None
        value = None if group is None else group.attrs.get("memory")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def shot_frame(path: Path, *, as_path: Path) -> bytes:
    """*path*'s row of lyse's DataFrame (``get_dataframe_from_shot``), pickled, with the
    paths lyse puts in it (``filepath``, ``agnostic_path``) those of *as_path*: the row
    lyse reads from the archived copy, a byte copy of *path*."""
    import pickle

    from labscript_utils.shared_drive import path_to_agnostic
    from lyse.dataframe_utilities import get_dataframe_from_shot

    frame = get_dataframe_from_shot(str(path))
    if as_path != path:
        padding = ("",) * (frame.columns.nlevels - 1)
        for name, value in (
            ("filepath", str(as_path)),
            ("agnostic_path", path_to_agnostic(str(as_path))),
        ):
            if (name, *padding) in frame.columns:
                frame[(name, *padding)] = value
    return pickle.dumps(frame)
