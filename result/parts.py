"""The parts of the result daemon that its steps share: the shots in hand, the executors, the
shots' deaths, giving up, placing, and filing address files. ``ResultDaemon`` makes them once;
taking shots in (:mod:`result.intake`) and collecting them (:mod:`result.collecting`) use them."""

from __future__ import annotations

from dataclasses import dataclass

from result.deaths import ShotDeaths
from result.executing import Executors
from result.filing import AddressFiles
from result.giving_up import GivingUp
from result.inhand import InHand
from result.placing import Placing
from spooler.core.jobs import Jobs

__all__ = ["Parts", "Step"]


@dataclass(frozen=True, slots=True)
class Parts:
    jobs: Jobs
    shots: InHand
    executors: Executors
    deaths: ShotDeaths
    giving_up: GivingUp
    files: AddressFiles
    placing: Placing


class Step:
    """A step of the daemon's pass, with the shared parts under their names."""

    def __init__(self, parts: Parts) -> None:
        self.jobs = parts.jobs
        self.shots = parts.shots
        self.executors = parts.executors
        self.deaths = parts.deaths
        self.giving_up = parts.giving_up
        self.files = parts.files
        self.placing = parts.placing
