"""Deaths on a shot: how often a process died while it handled the shot, and what that says.

Two counts a shot, durable in the job store (:class:`spooler.core.items.DeathCounter`, per
boot of the machine):

- ``KIND``: the daemon died while the shot was in its hands. With the ``inline`` executor
  the analysis runs in the daemon, so such a death may be the shot's doing; the shot is
  then analysed next in a process of its own, where its crash is seen for what it is.
- ``KIND_SEEN``: a process analysing the shot died and the daemon saw it (a worker of the
  pool, which knows which shot it had; the process of a shot analysed alone).

Once the two add up to ``limits.item_deaths_max``, with at least one seen, the shot is given
up (:func:`died` says why). A shot done with (archived, refused, given up) has its deaths
forgotten.
"""

from __future__ import annotations

from spooler.core.items import DeathCounter
from spooler.core.store import Reader, Transaction

__all__ = ["KIND", "KIND_SEEN", "ShotDeaths", "died"]

KIND = "shot"  # the DeathCounter's kind of item: an address file and the shot it names
KIND_SEEN = "shot, seen"  # deaths of a process analysing the shot alone, seen by the daemon


class ShotDeaths:
    """The two counts of deaths on each shot, in the daemon's death counter."""

    def __init__(self, counter: DeathCounter) -> None:
        self.counter = counter

    def counts(self, read: Reader, name: str) -> tuple[int, int]:
        """(deaths of the daemon, deaths seen) on the shot of the address file *name*."""
        return self.counter.deaths(read, KIND, name), self.counter.deaths(read, KIND_SEEN, name)

    def seen(self, tx: Transaction, name: str) -> None:
        """A process analysing the shot died, seen by the daemon: it is the shot's."""
        self.counter.begin(tx, KIND_SEEN, name)

    def running_here(self, name: str) -> None:
        """The shot is analysed in the daemon now: a death of the daemon is the shot's."""
        self.counter.started(KIND, name)

    def ran_here(self, name: str) -> None:
        """The daemon lived through the shot's analysis."""
        self.counter.ended(KIND, name)

    def forget(self, tx: Transaction, name: str) -> None:
        """The shot is done with (archived, refused, given up): its deaths are forgotten."""
        self.counter.end(tx, KIND, name)
        self.counter.end(tx, KIND_SEEN, name)


def died(daemon: int, seen: int, last: str | None) -> str:
    """Why a shot is given up after *daemon* deaths of the daemon and *seen* deaths of a
    process analysing it (*last*: how the last one died)."""
    parts = []
    if daemon:
        parts.append(f"the result daemon died {daemon} time(s) while handling this shot")
    if seen:
        how = f" (last: {last})" if last else ""
        parts.append(f"a process analysing it alone died {seen} time(s){how}")
    return (
        f"{' and '.join(parts)}: a damaged file that crashes a library, or an analysis routine "
        "that ends the process; given up without another try"
    )
