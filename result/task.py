"""The work on one shot, wherever an executor runs it: a task in, what it found out.

A :class:`ShotTask` names the shot as it came (the local file BLACS wrote, or for
reprocessing the archived one) and where its archived copy goes. :func:`run_shot`:

1. copies it to a *work copy* beside its place on the store, under a hidden name unique to
   this run of the task (``.<shot>.<random>.<suffix>``): lyse writes into the file it
   analyses, and the shot itself stays untouched until its analysed copy is archived;
2. checks the copy (an HDF5 labscript shot whose own globals name what its address says;
   :func:`result.addresses.check_shot`), unless it was checked before (reprocessing), and
   runs the analysis routines on it, without the suite's zlock locks
   (:func:`private_files`: no other process opens that copy);
3. reads the copy's row of lyse's DataFrame (its paths those of the archived copy) and the
   copy's size and SHA-256, and makes the copy durable (fsync).

It returns a :class:`ShotOutcome` and writes nothing but its own work copy, so a task run
twice (Dask may) changes nothing: the result daemon, the one writer of the ledger, the job
states and the final names on the store, takes one outcome, verifies its work copy against
the outcome's checksum and renames it into place. A routine that fails leaves a copy of the
shot as it came (archived as it came; its job ends ``ERROR``).

Nothing here is passed open between processes: the task opens its files itself, and all it
carries in and out is plain data (picklable for a process pool or Dask).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from result.addresses import Address, BadAddress, DamagedShot, check_shot
from result.analysis import AnalysisError, Routine, analyse, load_routines, version_of
from result.archive import StoreUnavailable, checksum, flush_file, is_transient
from spooler.core.settings import GlobalNames

__all__ = [
    "ShotOutcome",
    "ShotTask",
    "private_files",
    "routines_version",
    "run_shot",
    "shot_row",
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

# what a store that fails raises (permissions, read-only, full, quota, I/O, gone, stale NFS)
_STORE_ERRORS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EIO,
    errno.ENOENT,
    errno.ESTALE,
    errno.ENOTCONN,
}


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
    frame: bytes | None = None  # the shot's row of lyse's DataFrame, pickled (shot_row)
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
    import warnings

    from result import locklease
    from spooler.core.headless import headless

    with warnings.catch_warnings():
        # lyse 3.3 warns that a Run outside its GUI ("standalone") is deprecated; it is the
        # documented way to read and write a shot's results, and the one used here.
        warnings.filterwarnings(
            "ignore", "Running standalone single-shot lyse scripts", FutureWarning
        )
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
        _versions[specs] = version_of(_loaded(specs))
    return _versions[specs]


def run_shot(task: ShotTask) -> ShotOutcome:
    """Check, copy and analyse one shot (see the module's text); never raises for what the
    shot or the store did (that is in the outcome), only for a fault of labspool itself."""
    started = time.perf_counter()
    try:
        warm_up()
    except Exception as exc:  # this worker cannot import the suite: not the shot's fault
        return ShotOutcome(
            task.address,
            UNAVAILABLE,
            error=f"the worker {socket.gethostname()}:{os.getpid()} cannot import the "
            f"labscript suite: {type(exc).__name__}: {exc}",
        )
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
    if not task.analyse:  # archived already (before a crash): its row, as it is there
        if task.expect is not None:
            checked = _check(source, task)
            if checked is not None:
                return checked
        size, digest = checksum(source)
        return {
            "kind": ON_STORE,
            "memory": _saved_memory(source, task.memory_routine),
            "size": size,
            "sha256": digest,
            "frame": shot_row(source, as_path=target),
        }
    work = work_name(target, task.suffix)
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, work)
        except OSError as exc:
            _remove(work)
            return {"kind": UNAVAILABLE, "error": f"cannot write the work copy {work}: {exc}"}
        with private_files():  # the work copy is this task's alone
            if task.expect is not None:
                checked = _check(work, task)  # a byte copy of the shot: the shot's content
                if checked is not None:
                    _remove(work)
                    return checked
            kind, memory, error = ANALYSED, None, None
            try:
                results = analyse(work, _loaded(task.routines))
            except AnalysisError as exc:
                kind, error = FAILED, str(exc)
                shutil.copyfile(source, work)  # archived as it came, not half analysed
            else:
                value = results.get(task.memory_routine or "", {}).get("memory", "")
                memory = "" if value is None else str(value)
            frame = shot_row(work, as_path=target)
        size, digest = checksum(work)
        flush_file(work)  # durable before the daemon renames it into place
    except StoreUnavailable as exc:
        _remove(work)
        return {"kind": UNAVAILABLE, "error": str(exc)}
    except OSError as exc:
        _remove(work)
        if exc.errno in _STORE_ERRORS:  # the store went read-only, full, away mid-analysis
            return {"kind": UNAVAILABLE, "error": f"the store failed under the work copy: {exc}"}
        raise
    except BaseException as exc:
        _remove(work)
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


def _check(path: Path, task: ShotTask) -> dict[str, Any] | None:
    """The shot at *path* is what the task expects (None), or what it is instead."""
    assert task.expect is not None
    try:
        check_shot(Address(path, *task.expect), task.names)
    except BadAddress as exc:
        return {"kind": REFUSED, "error": str(exc)}
    except DamagedShot as exc:
        return {"kind": DAMAGED, "error": str(exc)}
    except StoreUnavailable as exc:
        return {"kind": UNAVAILABLE, "error": str(exc)}
    return None


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):  # a store that fails: the copy is tidied later
        path.unlink(missing_ok=True)


def _saved_memory(path: Path, routine: str | None) -> str:
    """The memory entry an analysis saved in *path* before (lyse's place for results)."""
    import h5py

    with h5py.File(path, "r") as shot:
        group = shot.get(f"results/{routine}") if routine else None
        value = None if group is None else group.attrs.get("memory")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def shot_row(path: Path, *, as_path: Path) -> bytes:
    """*path*'s row of lyse's DataFrame, pickled: the flat dictionary (column tuple to value)
    that lyse's ``get_dataframe_from_shot`` makes into its one-row DataFrame, with the paths
    lyse puts in it (``filepath``, ``agnostic_path``) those of *as_path*, the archived copy,
    a byte copy of *path* (:func:`result.outputs.experiment_frame` builds the DataFrame)."""
    import pickle

    from labscript_utils.shared_drive import path_to_agnostic
    from lyse.dataframe_utilities import flatten_dict, get_nested_dict_from_shot

    flat = flatten_dict(get_nested_dict_from_shot(str(path)))
    if as_path != path:
        flat[("filepath",)] = str(as_path)
        flat[("agnostic_path",)] = path_to_agnostic(str(as_path))
    return pickle.dumps(flat)


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """HDF5 files opened meanwhile are opened without the suite's zlock lock.

    ``labscript_utils.h5_lock`` replaces ``h5py.File`` with a class that takes a lock on the
    zlock server for every open (1 to 2 ms each, a dozen opens a shot), so that BLACS, lyse
    and runmanager never write one shot file at once. A task's work copy has a name of its
    own that no other process opens, so the lock protects nothing there. h5_lock keeps the
    class it replaced as ``h5_lock._File``; it is put back in ``h5py`` for the block. That
    is for the whole process: a worker runs one task at a time (the executors' one thread
    per worker), and the daemon opens HDF5 files only in its main thread between tasks (the
    archived shots a finished job's provenance reads, with their locks). Without that
    attribute (a labscript-utils that changed) files are opened with their locks, as before."""
    import h5py
    import labscript_utils.h5_lock as h5_lock

    unlocked = getattr(h5_lock, "_File", None)
    locked = h5py.File
    if unlocked is None or locked is unlocked:
        yield
        return
    h5py.File = unlocked
    try:
        yield
    finally:
        h5py.File = locked
