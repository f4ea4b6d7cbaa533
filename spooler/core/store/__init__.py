"""The job store: one SQLite database in WAL mode, shared by both daemons and the gateway.

SQLite serialises writers across processes (``BEGIN IMMEDIATE``) and, with
``synchronous=FULL``, every commit is durable. The status files users read are views
rendered from it (:mod:`spooler.core.statusfile`).

No SQL is written outside this package: :mod:`~spooler.core.store.schema` holds every table
and migration, :class:`~spooler.core.store.reader.Reader` and
:class:`~spooler.core.store.transaction.Transaction` the jobs' named queries, and a module per
other table its own (``shots``: the result daemon's ledger, ``starts``: the poison items'
starts, ``users``: the gateway's users, ``notifications``: the lab's outbox (a transaction
adds to it with ``notify``), ``reprocessing``: the jobs reprocessed, ``reports``: the views'
sums over several tables).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from spooler.core.errors import LabspoolError
from spooler.core.store import schema
from spooler.core.store.reader import Reader
from spooler.core.store.records import (
    ExperimentRecord,
    HealthRow,
    JobRecord,
    NotificationRow,
    QueuePlace,
    TransitionRecord,
)
from spooler.core.store.schema import SCHEMA_VERSION
from spooler.core.store.transaction import Transaction

__all__ = [
    "SCHEMA_VERSION",
    "ExperimentRecord",
    "HealthRow",
    "JobRecord",
    "JobStore",
    "NotificationRow",
    "QueuePlace",
    "Reader",
    "Transaction",
    "TransitionRecord",
]


class JobStore:
    """The database file; open one per process (and per thread that writes)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._db = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        schema.create(self._db)
        with self.transaction() as tx:
            version = tx.meta("schema_version")
            if version is None:
                tx.set_meta("schema_version", str(SCHEMA_VERSION))
            elif int(version) > SCHEMA_VERSION:
                raise LabspoolError(
                    f"{self.path} was written by a newer labspool (schema {version})"
                )
            elif int(version) < SCHEMA_VERSION:
                tx.set_meta("schema_version", str(SCHEMA_VERSION))

    def close(self) -> None:
        self._db.close()

    @property
    def read(self) -> Reader:
        return Reader(self._db)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction; commits (durably) when the block ends, rolls back on error."""
        self._db.execute("BEGIN IMMEDIATE")
        tx = Transaction(self._db, self.clock())
        try:
            yield tx
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """A consistent read view across several queries."""
        self._db.execute("BEGIN")
        try:
            yield Reader(self._db)
        finally:
            self._db.execute("COMMIT")
