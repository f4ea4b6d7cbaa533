"""Crash-safe file operations: atomic publication, durable moves, careful reads.

Every file the daemons write goes through :func:`write_atomic`: a temporary file in the
same folder, fsync, rename over the target, fsync of the folder. A reader therefore sees
the old or the new content, never a torn one, and a kill -9 at any instant loses nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spooler.core.errors import JobRejected, SpoolerBusy

__all__ = [
    "ENVIRONMENT_ERRNOS",
    "Batch",
    "clear_stale_temps",
    "exclusive_lock",
    "exists_in",
    "free_name",
    "fsync_dir",
    "is_environment_error",
    "is_ignored_name",
    "json_objects",
    "move",
    "read_regular_file",
    "temp_name",
    "write_atomic",
]

# Errors of the machine's environment (a disk read-only, full, or refusing), not of a job or
# a shot: the daemons wait for them to pass (spooler.pipeline.monitor, result.daemon).
ENVIRONMENT_ERRNOS = frozenset(
    {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EIO}
)


def is_environment_error(exc: BaseException) -> bool:
    """An error of the disk or its permissions: the machine's fault, not the item's."""
    return isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS


# Names a producer may use while it is still writing a file; never read as a job.
_TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".swp", ".crdownload", "~")


def is_ignored_name(name: str) -> bool:
    """True for hidden and temporary file names, which are never taken as jobs."""
    return name.startswith((".", "#")) or name.endswith(_TEMP_SUFFIXES)


def temp_name(target: Path) -> Path:
    """A hidden temporary name beside *target*, unique per process and thread."""
    return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")


# temp_name's (pid and thread) and the BLACS plugin's (pid only)
_TEMPS = (
    re.compile(r"\..+\.(?P<pid>[0-9]+)\.[0-9]+\.tmp"),
    re.compile(r"\..+\.(?P<pid>[0-9]+)\.tmp"),
)


def clear_stale_temps(folder: Path, *, depth: int = 0) -> int:
    """Remove the temporary files (:func:`temp_name`) that a killed process left in *folder*
    (and *depth* levels of subfolders): those whose process is gone. Returns how many.

    The folder is listed once, entry by entry (never held whole in memory); only hidden names
    ending in ``.tmp`` are matched further. Its cost grows with the entries of *folder*: the
    daemons call it on folders that stay small, or that may hold a temporary file at all
    (see :meth:`spooler.core.watching.WatchingDaemon._clear_stale_temps`)."""
    removed = 0
    try:
        listing = os.scandir(folder)
    except FileNotFoundError:
        return 0
    with listing:
        for entry in listing:
            name = entry.name
            if depth and entry.is_dir(follow_symlinks=False):
                removed += clear_stale_temps(Path(entry.path), depth=depth - 1)
                continue
            if not (name.startswith(".") and name.endswith(".tmp")):
                continue
            match = _TEMPS[0].fullmatch(name) or _TEMPS[1].fullmatch(name)
            if match is None or _alive(int(match["pid"])):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(path: Path) -> None:
    """Make the entries of folder *path* (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True, mode: int = 0o644) -> None:
    """Publish *data* at *path* atomically and durably.

    With ``sync_dir=False`` the caller promises to :func:`fsync_dir` the folder itself, once
    for a batch of files (a group commit); the file's own data is always fsynced.
    """
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def move(src: Path, dst: Path, *, sync_dirs: bool = True) -> None:
    """Rename *src* to *dst* (same filesystem) without replacing an existing *dst*."""
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(f"{dst} exists already")
    os.rename(src, dst)
    if sync_dirs:
        fsync_dir(dst.parent)
        if src.parent != dst.parent:
            fsync_dir(src.parent)


def _load_syncfs() -> object | None:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    except OSError:
        return None


_SYNCFS = _load_syncfs()


def syncfs(folder: Path) -> bool:
    """Flush the whole filesystem holding *folder* (Linux ``syncfs``); False where unavailable."""
    if _SYNCFS is None:
        return False
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _SYNCFS(fd) != 0:  # type: ignore[operator]
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs: {os.strerror(code)}", str(folder))
    finally:
        os.close(fd)
    return True


class Batch:
    """Files published together, as durably as :func:`write_atomic` but with one flush for all.

    :meth:`write` puts each file's data in a temporary name beside its target and :meth:`move`
    notes a rename; :meth:`commit` makes every temporary durable, renames all of them (and
    the noted moves) into place, then makes the folders durable. With ``syncfs`` that is two
    flushes of the filesystem for the whole batch instead of two fsyncs per file. A crash
    before :meth:`commit` leaves only hidden temporaries, which nothing reads.
    """

    def __init__(self) -> None:
        self._files: list[tuple[Path, Path]] = []
        self._moves: list[tuple[Path, Path]] = []
        self._folders: set[Path] = set()

    def __len__(self) -> int:
        return len(self._files) + len(self._moves)

    def write(self, path: Path, data: bytes, *, mode: int = 0o644) -> None:
        tmp = temp_name(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        self._files.append((tmp, path))
        self._folders.add(path.parent)

    def move(self, src: Path, dst: Path) -> None:
        self._moves.append((src, dst))
        self._folders.update((src.parent, dst.parent))

    def commit(self) -> None:
        if not self:
            return
        self._flush(data=True)
        for tmp, path in self._files:
            os.replace(tmp, path)
        for src, dst in self._moves:
            move(src, dst, sync_dirs=False)
        self._flush(data=False)
        self._files.clear()
        self._moves.clear()
        self._folders.clear()

    def abort(self) -> None:
        for tmp, _ in self._files:
            tmp.unlink(missing_ok=True)
        self._files.clear()
        self._moves.clear()
        self._folders.clear()

    def _flush(self, *, data: bool) -> None:
        filesystems: dict[int, Path] = {}
        for folder in self._folders:
            filesystems.setdefault(os.stat(folder).st_dev, folder)
        try:
            if all(syncfs(folder) for folder in filesystems.values()):
                return
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
        if data:
            for tmp, _ in self._files:
                fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        else:
            for folder in self._folders:
                fsync_dir(folder)


def read_regular_file(path: Path, max_bytes: int, *, what: str = "the job file") -> bytes:
    """Read a job file (or another untrusted file, *what*) safely: no symlinks, only a
    regular file with one link, at most *max_bytes*.

    The size is checked with fstat before anything is read; FIFOs and devices are opened
    non-blocking and refused.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if path.is_symlink():
            raise JobRejected(
                f"{what} is a symbolic link; only regular files are accepted"
            ) from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise JobRejected(f"{what} is not a regular file")
        if info.st_nlink != 1:
            raise JobRejected(
                f"{what} has {info.st_nlink} hard links; only a file with one link is taken"
            )
        if info.st_size > max_bytes:
            raise JobRejected(
                f"{what} has {info.st_size} bytes, more than the limit of {max_bytes} bytes"
            )
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise JobRejected(f"{what} grew beyond the limit of {max_bytes} bytes while read")
        return data
    finally:
        os.close(fd)


def exclusive_lock(path: Path, who: str) -> int:
    """Hold an exclusive lock on *path* for the life of the process (one *who* per tree).

    Returns the file descriptor (close it to release); raises :class:`SpoolerBusy` naming
    the holder's pid when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise SpoolerBusy(f"another {who} (pid {holder}) already serves {path.parent}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def json_objects(folder: Path, pattern: str, max_bytes: int = 1 << 20) -> Iterator[dict[str, Any]]:
    """The JSON objects in the files of *folder* whose names match *pattern* (untrusted: a
    file that is no regular file, too large, unreadable or no JSON object is skipped)."""
    for path in folder.glob(pattern) if folder.is_dir() else ():
        try:  # a FIFO or a huge file must not stop the daemon reading them
            document = json.loads(read_regular_file(path, max_bytes, what="the file"))
        except (OSError, ValueError, JobRejected):
            continue
        if isinstance(document, dict):
            yield document


def free_name(name: str, taken: Callable[[str], bool], *, keep_suffix: bool = True) -> str:
    """*name* if it is not *taken*, else the first free of ``<stem>.1<suffix>``,
    ``<stem>.2<suffix>``... (``keep_suffix=False``: ``<name>.1``, ``<name>.2``...): the one
    rule by which labspool files a file beside others of the same name, never replacing one."""
    stem, suffix = (Path(name).stem, Path(name).suffix) if keep_suffix else (name, "")
    candidate, n = name, 1
    while taken(candidate):
        candidate = f"{stem}.{n}{suffix}"
        n += 1
    return candidate


def exists_in(folder: Path, *companions: str) -> Callable[[str], bool]:
    """*taken* for :func:`free_name`: a name (or a link) in *folder*, or one of its
    companions ``<name><companion>``."""

    def taken(name: str) -> bool:
        return any(
            (folder / f"{name}{c}").exists() or (folder / f"{name}{c}").is_symlink()
            for c in ("", *companions)
        )

    return taken
