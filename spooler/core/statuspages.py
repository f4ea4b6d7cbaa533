"""The jobs' status documents read a page at a time: what ``labspool status`` lists.

A listing holds a page of jobs at a time (:data:`PAGE`; a page of each state while the
states are merged in the order the jobs came). The jobs are read from an
index from where the last page ended (keyset pages: :meth:`spooler.core.store.Reader.jobs_from`
and :meth:`~spooler.core.store.Reader.queue_from`), and what each page's documents need
besides the jobs (their places in the queue, estimates, histories) is read for the whole page
in a few statements, never one job at a time. So a listing of every job costs in proportion
to the jobs, page after page, and a page of a store that has run for a year costs what it
does on a new one; the documents of one job, and of the running jobs, the queue and the
last few ended jobs (the live view), do not depend on how many jobs ended before.

The documents are those of the status files (:func:`spooler.core.statusfile.status_document`):
the queued jobs' estimates from their places in the queue (:func:`estimate_shown`), the same
figures as a walk of the queue. How far a long listing is, :class:`Progress` says.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO

from spooler.core.estimates import Estimate, estimate_shown
from spooler.core.progressline import ProgressLine
from spooler.core.states import JobState
from spooler.core.statusfile import status_document, status_fields
from spooler.core.store import JobRecord, Reader
from spooler.core.store.provenance import Provenance

__all__ = [
    "ACTIVE",
    "PAGE",
    "Progress",
    "by_seq",
    "documents",
    "last_of",
    "pages",
    "queue",
]

PAGE = 500  # jobs read, estimated and written at a time
ACTIVE = (JobState.RUNNING, JobState.QUEUED)  # shown apart, before the others, in the table


def documents(
    reader: Reader, now: float, records: Sequence[JobRecord], *, history: bool = True
) -> list[dict[str, Any]]:
    """The status documents of *records* (a page), as the status files have them (without
    the job's history and what else a status file adds to :func:`status_fields`, unless
    *history*); their places, estimates and histories read for the whole page at once."""
    queued = [r.job_id for r in records if r.state is JobState.QUEUED]
    places = reader.queue_places(queued) if queued else {}
    positions = {job_id: place.position for job_id, place in places.items()}
    estimates = estimate_shown(reader, now, records, places)
    if not history:
        return [
            status_fields(r, positions.get(r.job_id), estimates.get(r.job_id, Estimate()), now)
            for r in records
        ]
    view = reader.with_histories(reader.histories(r.job_id for r in records))
    provenances = Provenance.of_each(
        reader, ((r.job_id, r.attempt) for r in records if r.state is JobState.DONE)
    )
    return [status_document(view, r, positions, estimates, now, provenances) for r in records]


def by_seq(
    reader: Reader,
    states: Iterable[JobState],
    *,
    newest_first: bool = False,
    page: int = PAGE,
) -> Iterator[JobRecord]:
    """The jobs in *states* in the order they came (or the newest first): each state's read
    from its index *page* jobs at a time, the states merged."""

    def one(state: JobState) -> Iterator[JobRecord]:
        seq: int | None = None
        while True:
            found = reader.jobs_from(state, seq, page, newest_first=newest_first)
            yield from found
            if len(found) < page:
                return
            seq = found[-1].seq

    streams = [one(state) for state in dict.fromkeys(states)]
    return heapq.merge(*streams, key=_seq, reverse=newest_first)


def last_of(reader: Reader, states: Iterable[JobState], count: int) -> list[JobRecord]:
    """The last *count* jobs in *states*, in the order they came (what was asked for is
    held: *count* jobs)."""
    if count <= 0:
        return []
    newest = by_seq(reader, states, newest_first=True, page=min(count, PAGE))
    return list(itertools.islice(newest, count))[::-1]


def queue(reader: Reader) -> Iterator[JobRecord]:
    """The QUEUED jobs in the order they will run, read a page at a time."""
    after: JobRecord | None = None
    while True:
        found = reader.queue_from(after, PAGE)
        yield from found
        if len(found) < PAGE:
            return
        after = found[-1]


def pages(
    reader: Reader,
    now: float,
    records: Iterable[JobRecord],
    *,
    history: bool = True,
    done: Callable[[int], None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The documents of *records*, a page at a time (each page read when the one before
    has been used); *done* is told how many pages' jobs were read so far."""
    count = 0
    iterator = iter(records)
    while page := list(itertools.islice(iterator, PAGE)):
        yield documents(reader, now, page, history=history)
        count += len(page)
        if done is not None:
            done(count)


def _seq(record: JobRecord) -> int:
    return record.seq


class Progress:
    """How far a listing is, on *stream* (standard error): said once the listing has taken
    *after_s*, then at most every *every_s*, on one line rewritten in place on a terminal
    (a line each elsewhere), and ended with how many jobs took how long."""

    def __init__(
        self,
        stream: TextIO,
        *,
        after_s: float = 1.0,
        every_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._line = ProgressLine(stream)
        self._after_s, self._every_s, self._clock = after_s, every_s, clock
        self._total = self._done = 0
        self._start = clock()
        self._said: float | None = None

    def start(self, total: int) -> None:
        self._total, self._done, self._start, self._said = total, 0, self._clock(), None

    def update(self, done: int) -> None:
        self._done = done
        now = self._clock()
        if now - self._start < self._after_s:
            return
        if self._said is not None and now - self._said < self._every_s:
            return
        self._said = now
        share = 100 * done // self._total if self._total else 100
        self._line.say(f"labspool status: {done:,} of {self._total:,} jobs ({share}%)")

    def finish(self) -> None:
        if self._said is not None:
            spent = self._clock() - self._start
            self._line.say(f"labspool status: {self._done:,} jobs in {spent:.1f} s", end=True)
