"""Status files: ``status/<job_id>.json``, the users' view of each job, rendered from the store.

The ecosystem's fields (``job_id``, ``status``, ``detail``, ``error_message`` with the string
``"None"`` when there is no error) come first; the extras carry the attempt, the user (from
the gateway or the file's name; null when none), queue position,
shot counts, elapsed time, estimated start and finish (as of ``estimated_at``, see
:mod:`spooler.core.estimates`), the time of every transition and, once the job is ``DONE``,
its ``provenance``: what its result was made with, the same object as in the result file's
header (:mod:`result.provenance`; null before, or for a job done by a labspool that did not
record it). Both daemons render status
files after they commit; rendering holds a lock on the folder and reads the store inside
it, so the last writer always writes the newest state, whichever process it is.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spooler.core.estimates import Estimate, estimate_jobs
from spooler.core.fsutil import Batch
from spooler.core.states import JobState
from spooler.core.store import JobRecord, Reader
from spooler.core.store.provenance import Provenance
from spooler.core.timestamps import iso_time

__all__ = ["StatusFiles", "iso_time", "status_document", "status_fields"]


def status_document(
    reader: Reader,
    record: JobRecord,
    positions: dict[str, int] | None = None,
    estimates: dict[str, Estimate] | None = None,
    now: float | None = None,
    provenances: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The status file's content; *positions*, *estimates* and *provenances* (for many jobs,
    read at once: a job missing from *provenances* has none) save queries."""
    now = time.time() if now is None else now
    if positions is None:
        positions = reader.queue_positions([record.job_id])
    if estimates is None:
        estimates = estimate_jobs(reader, now, {record.job_id})
    estimate = estimates.get(record.job_id, Estimate())
    history = reader.history(record.job_id)
    return {
        **status_fields(record, positions.get(record.job_id), estimate, now),
        "history": [
            {"attempt": t.attempt, "status": t.to_state.value, "at": iso_time(t.at), "note": t.note}
            for t in history
        ],
        "provenance": (
            None
            if record.state is not JobState.DONE
            else Provenance.of(reader, record.job_id, record.attempt)
            if provenances is None
            else provenances.get(record.job_id)
        ),
    }


def status_fields(
    record: JobRecord, position: int | None, estimate: Estimate, now: float
) -> dict[str, Any]:
    """A status document without its history: what the record, the job's place in the
    queue and its estimate say."""
    return {
        "job_id": record.job_id,
        "status": record.state.value,
        "detail": record.detail,
        "error_message": record.error_message if record.error_message else "None",
        "attempt": record.attempt,
        "backend": record.backend,
        "user": record.submitter,
        "submitted_as": record.source_name,
        "queue_position": position,
        "experiments": record.experiments,
        "shots_requested": record.shots_requested,
        "shots_expected": record.shots_expected,
        "shots_made": record.shots_made,
        "shots_done": record.shots_done,
        "elapsed_s": None if estimate.elapsed_s is None else round(estimate.elapsed_s, 3),
        "estimated_start": iso_time(estimate.start),
        "estimated_finish": iso_time(estimate.finish),
        "estimated_at": iso_time(now),
        "created_at": iso_time(record.created_at),
        "updated_at": iso_time(record.updated_at),
    }


class StatusFiles:
    """The status folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    @contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def publish(self, reader: Reader, job_ids: Iterable[str], now: float | None = None) -> int:
        """Render the status files of *job_ids* from *reader*; the caller holds :meth:`locked`."""
        ids = list(job_ids)
        positions = reader.queue_positions(ids)
        now = time.time() if now is None else now
        estimates = estimate_jobs(reader, now, set(ids), positions)
        batch = Batch()
        try:
            for job_id in ids:
                record = reader.get(job_id)
                if record is not None:
                    document = status_document(reader, record, positions, estimates, now)
                    batch.write(self.path(job_id), json.dumps(document, indent=1).encode() + b"\n")
            count = len(batch)
            batch.commit()
        except BaseException:
            batch.abort()
            raise
        return count

    def read(self, job_id: str) -> dict[str, Any]:
        return json.loads(self.path(job_id).read_text(encoding="utf-8"))  # type: ignore[no-any-return]
