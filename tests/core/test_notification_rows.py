"""spooler.core.store.notifications: the outbox's queries, on a store with an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spooler.core.store import JobStore
from spooler.core.store.notifications import NotificationRows


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[JobStore]:
    s = JobStore(tmp_path / "db.sqlite3", clock=clock)
    try:
        yield s
    finally:
        s.close()


def add(store: JobStore, *titles: str) -> list[int]:
    with store.transaction() as tx:
        for title in titles:
            tx.notify("test", title, "body", job_id="j1")
    return [row.id for row in NotificationRows.due(store.read, float("inf"), 1000)]


def test_due_oldest_first_limited_and_only_when_its_try_is_due(store: JobStore) -> None:
    first, second, third = add(store, "one", "two", "three")
    assert [r.title for r in NotificationRows.due(store.read, 100.0, 2)] == ["one", "two"]
    with store.transaction() as tx:
        NotificationRows.failed(tx, [first], "refused", next_try_at=160.0)
    due = NotificationRows.due(store.read, 150.0)
    assert [r.id for r in due] == [second, third]
    (again,) = [r for r in NotificationRows.due(store.read, 160.0) if r.id == first]
    assert again.tries == 1 and again.next_try_at == 160.0


def test_sent_and_dropped_leave_the_outbox_and_the_rate_counts_the_sent(
    store: JobStore, clock: Clock
) -> None:
    first, second, third = add(store, "one", "two", "three")
    assert NotificationRows.pending(store.read) == 3
    clock.now = 200.0
    with store.transaction() as tx:
        NotificationRows.sent(tx, [first])
        NotificationRows.failed(tx, [second], "gone", next_try_at=200.0, drop=True)
    assert [r.id for r in NotificationRows.due(store.read, float("inf"))] == [third]
    assert NotificationRows.pending(store.read) == 1
    assert NotificationRows.sent_since(store.read, 199.0) == 1
    assert NotificationRows.sent_since(store.read, 201.0) == 0
