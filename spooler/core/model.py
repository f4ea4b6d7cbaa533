"""The typed form of a validated job: what rendering and the lab work from."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Experiment", "Instruction", "Job"]


@dataclass(frozen=True, slots=True)
class Instruction:
    name: str
    wires: tuple[int, ...]
    params: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    instructions: tuple[Instruction, ...]
    num_wires: int
    shots: int
    wire_order: str
    seed: int | None = None

    @property
    def measured_wires(self) -> tuple[int, ...]:
        """Wires with a ``measure``; a job without one is valid, its memory entries are empty."""
        seen: dict[int, None] = {}
        for instruction in self.instructions:
            if instruction.name == "measure":
                seen.update(dict.fromkeys(instruction.wires))
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class Job:
    experiments: tuple[Experiment, ...]

    @property
    def total_shots(self) -> int:
        return sum(e.shots for e in self.experiments)
