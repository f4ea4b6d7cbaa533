"""The shots in hand: where each shot that the result daemon holds in this process is.

The ledger (:mod:`spooler.core.store.shots`) says durably what a shot is (``received``,
``archived``, ``quarantined``); this says what the running daemon does with it now, and is
lost with the process: a daemon started anew finds its shots again in the ``claimed`` folder
and the ledger.
A shot is in one of three places:

- ``unread``: a claimed address file to read in the next pass (the ledger may not know it);
- ``waiting``: received (it has a ledger row), not submitted, in the order it came;
- ``flights``: submitted to an executor and not back (:class:`Flight`).

Across these, the daemon also keeps:

- ``submitted``: the shots this daemon submitted to the configured executor, not yet done;
- ``again``: shots that may have left work copies beside their places on the store (run
  before, by this daemon or the one before it), looked for once the shot is done;
- ``suspects``: shots that Dask gave up (it blamed them for workers that died), analysed
  alone here: why Dask gave up each;
- ``last_death``: how the last process that died on a shot died.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from result.executors import Executor
from result.task import ShotTask

__all__ = ["Flight", "InHand"]


@dataclass
class Flight:
    """A shot submitted to an executor."""

    path: Path  # its claimed address file
    task: ShotTask
    executor: Executor


@dataclass
class InHand:
    """The shots the daemon holds, by where they are (see the module's docstring)."""

    unread: list[Path] = field(default_factory=list)
    waiting: dict[str, Path] = field(default_factory=dict)
    flights: dict[str, Flight] = field(default_factory=dict)
    submitted: set[str] = field(default_factory=set)
    again: set[str] = field(default_factory=set)
    suspects: dict[str, str] = field(default_factory=dict)
    last_death: str | None = None

    def busy(self) -> bool:
        """Shots to read, to submit or to wait for."""
        return bool(self.flights or self.waiting or self.unread)

    def send_back(self, executor: Executor) -> None:
        """The shots in flight on *executor* (lost) wait for the next one; their tasks may
        have left work copies."""
        for name, flight in list(self.flights.items()):
            if flight.executor is executor:
                del self.flights[name]
                self.waiting[name] = flight.path
                self.again.add(name)

    def done(self, name: str) -> None:
        """The shot is finished: not to be submitted again by this daemon."""
        self.submitted.discard(name)
        self.suspects.pop(name, None)

    def copies_left(self, name: str, *, dask: bool) -> bool:
        """Whether earlier tasks of a finished shot may have left work copies: it was
        submitted more than once by this daemon, taken up after a restart, or run by Dask
        (which runs a task again on its own when a worker dies). Asked once: the mark is
        cleared."""
        left = dask or name in self.again
        self.again.discard(name)
        return left
