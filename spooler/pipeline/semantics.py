"""What each machine's physics forbids, beyond the schema: checked before a job is accepted.

A schema checks shapes and bounds instruction by instruction; these checks read a whole
experiment, or the whole job:

- the experiments are ``experiment_0`` ... ``experiment_{n-1}``, without gaps (a lone
  ``experiment_99999999999999999999`` is a typing accident, not a job of one experiment);
- the experiment's ``wire_order`` is the machine's: the fermions machine numbers its modes
  interleaved (wire ``2 i`` site ``i`` spin up, ``2 i + 1`` spin down), the spin machines
  sequentially; a job in another order would run a different circuit than its author wrote;
- a wire is loaded at most once: for fermions a mode holds one fermion (Pauli; a simulator
  would divide by a zero norm), for spins a second load of a wire has no meaning;
- nothing acts on a wire after its ``measure`` (the machine images at the end of the shot,
  and a measurement ends what the wire can tell), and so no wire is measured twice;
- with ``limits.exact_states_max`` (the virtual machine, which evolves the atoms exactly),
  the product of ``atoms + 1`` over a spin experiment's loaded wires is at most that.
"""

from __future__ import annotations

from collections.abc import Sequence

from spooler.core.backends import Backend
from spooler.core.errors import JobRejected
from spooler.core.model import Experiment

__all__ = ["check_experiment", "check_experiment_names"]

WIRE_ORDER_MEANING = {
    "interleaved": "wire 2 i is site i spin up, 2 i + 1 site i spin down",
    "sequential": "the wires in order",
}


def check_experiment_names(indices: Sequence[int]) -> None:
    """*indices*: the experiments' numbers, in increasing order."""
    for expected, index in enumerate(indices):
        if index != expected:
            raise JobRejected(
                f"experiments must be numbered experiment_0 to experiment_{len(indices) - 1} "
                f"without gaps; experiment_{expected} is missing (the job has "
                f"experiment_{index})"
            )


def check_experiment(
    backend: Backend, experiment: Experiment, exact_states_max: int | None
) -> None:
    name = experiment.name
    if experiment.wire_order != backend.default_wire_order:
        raise JobRejected(
            f"{name}: wire_order {experiment.wire_order!r} is not this machine's: "
            f"{backend.name} numbers its wires {backend.default_wire_order} "
            f"({WIRE_ORDER_MEANING[backend.default_wire_order]})"
        )
    loaded: dict[int, int] = {}  # wire -> atoms (0 for a fermion)
    measured: set[int] = set()
    for index, instruction in enumerate(experiment.instructions):
        where = f"{name}.instructions[{index}]"
        for wire in instruction.wires:
            if wire in measured:
                raise JobRejected(
                    f"{where}: {instruction.name} acts on wire {wire} after it was measured "
                    "(a measurement ends what a wire can tell in a shot)"
                )
        if instruction.name == "measure":
            measured.update(instruction.wires)
        elif instruction.name == "load":
            wire = instruction.wires[0]
            if wire in loaded:
                raise JobRejected(_loaded_twice(backend, where, wire))
            loaded[wire] = int(instruction.params[0]) if instruction.params else 0
    load = backend.gates.get("load")
    if exact_states_max is not None and load is not None and load.params:
        _check_states(name, loaded, exact_states_max)


def _loaded_twice(backend: Backend, where: str, wire: int) -> str:
    if backend.gates["load"].params:
        return f"{where}: wire {wire} is loaded twice (a wire is loaded once, at the start)"
    return (
        f"{where}: mode {wire} is loaded twice: a fermionic mode holds at most one fermion "
        "(Pauli's exclusion)"
    )


def _check_states(name: str, loaded: dict[int, int], limit: int) -> None:
    states = 1
    for atoms in loaded.values():
        states *= atoms + 1
    if states > limit:
        wires = ", ".join(f"{atoms} on wire {wire}" for wire, atoms in sorted(loaded.items()))
        raise JobRejected(
            f"{name}: too large to simulate exactly: its atoms ({wires}) span {states:,} "
            f"states (the product of atoms + 1 over the loaded wires), more than the virtual "
            f"machine's limit of {limit:,}"
        )
