"""Writing files the way labspool reads them: whole, flushed, under their final name at once."""

from __future__ import annotations

import os

__all__ = ["fsync_folder", "write_hidden"]


def write_hidden(folder: str, stem: str, data: bytes) -> str:
    """Write *data* to a hidden temporary file in *folder*, flushed to disk; returns its path
    (the caller renames it to its final name, which readers then see whole)."""
    tmp = os.path.join(folder, f".{stem}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
