"""File names from outside: any bytes the filesystem allows, shown and stored safely.

``os.listdir`` gives a name that is not valid UTF-8 as a ``str`` with surrogate escapes
(``b"job\\xff.json"`` becomes ``"job\\udcff.json"``); such a string cannot be encoded, so it
would break SQLite, JSON and log lines. A name is *plain* when it is printable text with
no surrogate (no control character, no line break, valid UTF-8); every other name is kept
on disk only under a daemon-made plain name, and shown as :func:`escaped`.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["escaped", "is_plain", "plain_name"]


def is_plain(name: str) -> bool:
    """True for a name that can go as it is into SQLite, JSON, logs and status files."""
    return name.isprintable() and not any("\ud800" <= c <= "\udfff" for c in name)


def escaped(name: str) -> str:
    """A printable rendering of any name: undecodable bytes as ``\\xNN``, control and other
    unprintable characters as ``\\n``, ``\\x07``, ``\\u200b``, a backslash doubled. A plain
    name without backslashes is returned unchanged."""
    if is_plain(name) and "\\" not in name:
        return name
    try:
        text = os.fsencode(name).decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from elsewhere than a file name
        text = name
    out = []
    for char in text:
        if "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1])
    return "".join(out)


def plain_name(name: str, *, prefix: str = "unsafe-name") -> str:
    """A daemon-made plain name for *name* (the same one for the same bytes)."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"{prefix}.{digest}"


def picture_name(job_id: str) -> str:
    """The file name of a job's picture (``result.routines.picture``) in its store folder."""
    return f"{job_id}.png"
