"""Submitting a job file: what ``labspool submit`` and the HTTP gateway both do.

The bytes are written to a hidden file in the staging folder (same file system as the dump
folder), made durable, and then renamed into the dump folder under the job's name: the
spooler never sees a partial file, nor a file with a second link. An id in use (a file in
the dump folder, a status file) is refused before anything is written. A job that carries
its user is named ``file_<id>-<user>.json``, the web front's name, from which the spooler
records the submitter (:mod:`spooler.core.jobid`).

Nothing here validates the job: the spooler does, and says what is wrong in the job's status
file, as for a file dropped by hand.
"""

from __future__ import annotations

import os

from spooler.core.errors import LabspoolError
from spooler.core.fsutil import fsync_dir, temp_name, write_atomic
from spooler.core.jobid import is_valid_job_id, new_job_id, parse_job_file_name
from spooler.core.settings import Folders

__all__ = ["JobIdTaken", "submit_job"]


class JobIdTaken(LabspoolError):
    """The job id is in use already (a file in the dump folder, or a job with that id)."""


def submit_job(
    folders: Folders, data: bytes, *, job_id: str | None = None, user: str | None = None
) -> str:
    """Put *data* into the dump folder as a job; returns its id."""
    job_id = job_id or new_job_id()
    if not is_valid_job_id(job_id):
        raise LabspoolError(
            f"{job_id!r} is not a valid job id (1 to 100 letters, digits, '_', '-')"
        )
    name = f"{job_id}.json" if user is None else f"file_{job_id}-{user}.json"
    parsed = parse_job_file_name(name)  # the spooler must read back the same id and user
    if (parsed.job_id, parsed.user) != (job_id, user):
        raise LabspoolError(f"the job id {job_id!r} and user {user!r} do not make a file name")
    target = folders.dump / name
    if target.exists() or (folders.status / f"{job_id}.json").exists():
        raise JobIdTaken(f"the job id {job_id} is already used")
    staged = temp_name(folders.staging / name)  # hidden, never the source itself
    write_atomic(staged, data)
    # A rename, not a link: the spooler refuses a job file with two links (a link is how a
    # file elsewhere would be smuggled in), and would see both names for a moment. Two
    # submissions of one id at the same instant can still both arrive: the spooler then
    # refuses the later one ("already used by an earlier job") and keeps the earlier.
    os.rename(staged, target)
    fsync_dir(folders.dump)
    return job_id
