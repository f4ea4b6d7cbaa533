"""Job ids: where they come from and what they may look like.

A job id becomes part of folder and file names, so it is checked against a strict
pattern (``re.fullmatch``; no path separators, no dots, no trailing newline).
The ecosystem's file names are understood: ``<id>.json``, ``job-<id>.json`` and
``file_<id>-<user>.json`` (the original web front).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from spooler.core.errors import JobRejected
from spooler.core.names import escaped

__all__ = [
    "JOB_ID_PATTERN",
    "JobName",
    "is_valid_job_id",
    "new_job_id",
    "parse_job_file_name",
    "rejected_id",
]

JOB_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
_JOB_ID = re.compile(JOB_ID_PATTERN)
_USER = r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}"
_FILE_NAMES = (
    re.compile(rf"file_(?P<id>[A-Za-z0-9][A-Za-z0-9_]{{0,99}})-(?P<user>{_USER})\.json"),
    re.compile(rf"job-(?P<id>{JOB_ID_PATTERN})\.json"),
    re.compile(rf"(?P<id>{JOB_ID_PATTERN})\.json"),
)
# Ids labspool gives to files whose own id is unusable; the dot keeps them apart from user ids.
_REJECTED = re.compile(r"rejected\.[0-9]{1,18}")


@dataclass(frozen=True)
class JobName:
    job_id: str
    user: str | None = None


def is_valid_job_id(job_id: str) -> bool:
    return _JOB_ID.fullmatch(job_id) is not None


def is_store_id(job_id: str) -> bool:
    """Any id the store may hold: a user's job id or one labspool gave a rejected file."""
    return is_valid_job_id(job_id) or _REJECTED.fullmatch(job_id) is not None


def rejected_id(sequence: int) -> str:
    return f"rejected.{sequence}"


def parse_job_file_name(name: str) -> JobName:
    """The job id (and user, where the name carries one) of a job file name."""
    for pattern in _FILE_NAMES:
        match = pattern.fullmatch(name)
        if match:
            return JobName(match["id"], match.groupdict().get("user"))
    shown = escaped(name)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise JobRejected(
        f"the file name '{shown}' gives no valid job id: name job files "
        "<id>.json, job-<id>.json or file_<id>-<user>.json, where the id has 1 to 100 letters, "
        "digits, '_' or '-' and starts with a letter or digit"
    )


def new_job_id(now: float | None = None) -> str:
    """A fresh id in the web front's style: UTC date and time plus random hex digits."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}_{secrets.token_hex(4)}"
