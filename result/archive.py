"""Putting an analysed shot in its place on the network store (SDS), never losing it.

A task (:mod:`result.task`) copies the shot to a work copy beside its place on the store,
analyses it, fsyncs it and says its size and SHA-256. :func:`place` then reads the copy back,
verifies it against what the task said, and renames it to its final name (atomic on one
filesystem); the caller syncs the folder and records the shot before it deletes the local
shot. A copy that does not verify is removed and the shot analysed again; a kill at any
moment leaves either the old state (the shot analysed again) or the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

__all__ = ["StoreUnavailable", "checksum", "flush_file", "is_transient", "place"]


class StoreUnavailable(OSError):
    """The store cannot take the shot now (unreachable, read-only, full), or a server the
    suite needs did not answer (zlock, the lock server every HDF5 open goes through): the
    shot is not at fault; everything stays and is tried again later."""


def is_transient(exc: BaseException) -> bool:
    """A failure of the suite's servers (zlock over zmq: a time-out, a lost connection), not
    a fault of the shot being read nor of the routine reading it."""
    return (type(exc).__module__ or "").startswith(("zmq", "zprocess"))


def checksum(path: Path) -> tuple[int, str]:
    """(size, SHA-256) of the file at *path*."""
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return f.tell(), digest.hexdigest()


def place(work: Path, target: Path, expected: tuple[int | None, str | None]) -> bool:
    """Rename the work copy *work* to *target* (replacing it) if it is what its task said:
    *expected* (size, SHA-256). False: it is gone or does not verify (then it is removed);
    analyse the shot again. A store that fails raises :class:`StoreUnavailable`."""
    try:
        found = checksum(work)  # the task made it durable (fsync) before it returned
    except FileNotFoundError:
        return False  # removed meanwhile (the tidying of another run)
    except OSError as exc:
        raise StoreUnavailable(f"cannot read the work copy {work}: {exc}") from exc
    if found != expected:
        with contextlib.suppress(OSError):  # a store that fails: tidied later
            work.unlink(missing_ok=True)
        return False
    try:
        os.replace(work, target)
    except OSError as exc:
        raise StoreUnavailable(f"cannot rename into the store: {exc}") from exc
    return True


def flush_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
