"""The job model as both daemons use it: the store plus the status files rendered from it.

>>> with jobs.change() as tx:            # one durable commit
...     tx.transition(job_id, JobState.RUNNING, note="Engaged on the lab")
# on leaving the block the changed jobs' status files are rendered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from spooler.core.settings import Folders
from spooler.core.statusfile import StatusFiles
from spooler.core.store import JobStore, Reader, Transaction

__all__ = ["Jobs"]


class Jobs:
    def __init__(self, folders: Folders, *, clock: Callable[[], float] = time.time) -> None:
        self.folders = folders
        self.store = JobStore(folders.database, clock=clock)
        self.status_files = StatusFiles(folders.status)
        self._deferred: set[str] | None = None  # touched jobs while publishing_once
        # status files rendered since the last transaction: job -> the mark they showed
        self._published: dict[str, int] = {}

    def close(self) -> None:
        """Close the store; the status files rendered since the last change are recorded as
        such first, so that a clean stop leaves none to render again at the next start."""
        try:
            if self._published:
                with self.store.transaction() as tx:
                    tx.clear_published(self._published)
                self._published = {}
        finally:
            self.store.close()

    @property
    def read(self) -> Reader:
        return self.store.read

    @contextmanager
    def change(self) -> Iterator[Transaction]:
        """A write transaction; afterwards the status files of the jobs it touched are rendered
        (inside :meth:`publishing_once`, when that block ends)."""
        with self.store.transaction() as tx:
            yield tx
            # durably, with the change: its status file is due (see publish_unpublished)
            if self._published:
                tx.clear_published(self._published)
                self._published = {}
            tx.mark_unpublished(tx.touched)
        if self._deferred is not None:
            self._deferred.update(tx.touched)
        else:
            self.publish(tx.touched)

    @contextmanager
    def publishing_once(self) -> Iterator[None]:
        """The status files of the jobs the block's transactions touch are rendered once, at
        its end (also if it fails: what was committed is published): a pass of many small
        transactions renders (and syncs) each file once."""
        if self._deferred is not None:
            yield
            return
        self._deferred = set()
        try:
            yield
        finally:
            ids, self._deferred = self._deferred, None
            self.publish(sorted(ids))

    def publish(self, job_ids: Iterable[str]) -> int:
        ids = list(job_ids)
        if not ids:
            return 0
        with self.status_files.locked(), self.store.snapshot() as reader:
            marks = reader.unpublished(ids)
            count = self.status_files.publish(reader, ids, self.store.clock())
        for job_id, mark in marks.items():  # cleared in the next transaction
            self._published[job_id] = max(mark, self._published.get(job_id, 0))
        return count

    def publish_unpublished(self) -> int:
        """Render the status files of every job changed since its file was last rendered: a
        process killed between a commit and its rendering left them behind (a daemon calls
        this when it starts)."""
        count = self.publish(sorted(self.read.unpublished()))
        if self._published:
            with self.store.transaction() as tx:
                tx.clear_published(self._published)
            self._published = {}
        return count

    def publish_queue(self) -> int:
        """Re-render every queued job (their positions move when the queue changes)."""
        return self.publish(r.job_id for r in self.read.queue())
