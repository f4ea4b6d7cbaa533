"""Moving a shot to the network store (SDS) so that it is never lost.

A move across filesystems is not atomic, so a shot goes to the store in steps, each safe to
be interrupted: copy to a hidden temporary name on the store (computing its SHA-256 on the
way), fsync it, read it back and verify size and checksum, rename it to its final name, fsync
the store's folder. Only after that, and after the ledger has recorded it, does the caller
delete the local copy. Repeating :func:`archive` after a crash at any point finishes the job:
a final file that is already there and verified is kept; a stale temporary one is replaced.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from spooler.fsutil import fsync_dir, temp_name

__all__ = [
    "Archived",
    "StoreUnavailable",
    "archive",
    "checksum",
    "copy_durably",
    "flush_file",
    "is_transient",
]

_CHUNK = 1 << 20


class StoreUnavailable(OSError):
    """The store cannot take the shot now (unreachable, read-only, full), or a server the
    suite needs did not answer (zlock, the lock server every HDF5 open goes through): the
    shot is not at fault; everything stays and is tried again later."""


def is_transient(exc: BaseException) -> bool:
    """A failure of the suite's servers (zlock over zmq: a time-out, a lost connection), not
    a fault of the shot being read nor of the routine reading it."""
    return (type(exc).__module__ or "").startswith(("zmq", "zprocess"))


@dataclass(frozen=True)
class Archived:
    path: Path
    size: int
    sha256: str


def checksum(path: Path) -> tuple[int, str]:
    """(size, SHA-256) of the file at *path*."""
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return f.tell(), digest.hexdigest()


def archive(local: Path, target: Path, *, replace: bool = False) -> Archived:
    """Put a verified copy of *local* at *target*; the local file is left for the caller.

    An existing *target* with other content is an error, unless *replace* (reprocessing),
    in which case it is replaced atomically by the verified copy."""
    size, digest = checksum(local)
    try:
        if target.exists():
            if checksum(target) == (size, digest):
                return Archived(target, size, digest)  # done before a crash
            if not replace:
                raise StoreUnavailable(
                    f"{target} exists on the store with other content; not replaced"
                )
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a copy a crash cut short
        tmp = temp_name(target)
        try:
            copied = _copy(local, tmp)
            if copied != (size, digest) or checksum(tmp) != (size, digest):
                raise StoreUnavailable(f"the copy of {local.name} on the store does not verify")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)
    except StoreUnavailable:
        raise
    except OSError as exc:
        raise StoreUnavailable(
            f"cannot write to the store: {exc.strerror or exc} ({target.parent})"
        ) from exc
    return Archived(target, size, digest)


def _copy(source: Path, destination: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as src, destination.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return size, digest.hexdigest()


def copy_durably(source: Path, destination: Path) -> None:
    """Copy *source* to *destination* on the same machine: temporary name, fsync, rename."""
    tmp = temp_name(destination)
    try:
        _copy(source, tmp)
        os.rename(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(destination.parent)


def flush_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
