"""A caller's jobs as the API finds them: posted and on their way in, or in the store.

A job posted is first a file in the dump folder, then in the claimed folder, then a record
in the store; each is looked at in that order, so that none is missed on its way. Another
user's job is answered exactly like one that does not exist (404); an operator sees every
job. A job's status is its status file, unless that lags behind the store (a job just
refused, before its file is written), then the store's record.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from spooler.core.errors import JobRejected, LabspoolError
from spooler.core.folders import Folders
from spooler.core.fsutil import read_regular_file
from spooler.core.jobid import parse_job_file_name
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobRecord, JobStore
from spooler.gateway.answers import Refused, error, job_answer, read_result
from spooler.gateway.users import User

__all__ = ["JobLookup", "finished_result", "pending_files"]


def pending_files(folders: Folders, user: str, job_id: str = "*") -> set[str]:
    """Ids of *user*'s jobs posted and not yet in the store, in the folders in the order
    a job passes them (dump, then claimed), so that none is missed on its way."""
    found: set[str] = set()
    for folder in (folders.dump, folders.claimed):
        for path in folder.glob(f"file_{job_id}-{user}.json"):
            with contextlib.suppress(JobRejected):
                name = parse_job_file_name(path.name)
                if name.user == user or user == "*":
                    found.add(name.job_id)
    return found


class JobLookup:
    """The jobs of the tree *settings* describes, read from *store* and its folders."""

    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.settings = settings
        self.store = store

    def record(self, caller: User, job_id: str, status: str) -> JobRecord | None:
        """The job's record as *caller* may see it; None for a job that is not in the store.
        Raises 404 (answered with *status*) for another user's job, and for a job neither
        in the store nor posted."""
        record = self.store.read.get(job_id)
        if record is None:
            user = "*" if caller.operator else caller.name
            if pending_files(self.settings.folders, user, job_id):
                return None  # posted: INITIALIZING
            record = self.store.read.get(job_id)  # taken in while the folders were looked at
        if record is None or not caller.sees(record.submitter):
            unknown = error(404, f"no job {job_id}", job_id=job_id, status=status)
            raise Refused(unknown)  # another user's job: answered the same
        return record

    def status(self, caller: User, job_id: str, *, status: str = "ERROR") -> dict[str, Any]:
        """The job's status: its status file, unless that lags behind the store (a job just
        refused, before its file is written), then the store's record, reason included."""
        record = self.record(caller, job_id, status)
        if record is None:
            return job_answer(job_id, "INITIALIZING", "Got your json.")
        path = self.settings.folders.status / f"{job_id}.json"
        try:
            document = json.loads(read_regular_file(path, 4 << 20, what="the status file"))
        except (OSError, ValueError, LabspoolError):
            document = None
        if isinstance(document, dict) and document.get("status") == record.state.value:
            return document
        ended = record.state in (JobState.ERROR, JobState.CANCELLED)
        message = record.error_message or (record.detail if ended else None)
        return job_answer(job_id, record.state.value, record.detail, message or "None")


def finished_result(path: Path) -> bytes:
    """The result document of *path* with ``"status": "finished"``, as the answer's body."""
    return json.dumps({**read_result(path), "status": "finished"}, ensure_ascii=False).encode()
