"""The backend configuration the qiskit-cold-atom client reads (``get_config``).

The released client (0.1.0 - 0.2.1) builds qiskit's ``QasmBackendConfiguration`` from this
document (``BackendConfiguration.from_dict``) and checks every circuit against it before it
posts a job: the number of experiments and shots, that each instruction is one of
``supported_instructions``, and that the wires of each gate listed in ``gates`` are one of
that gate's ``coupling_map`` entries. With ``num_species`` present it converts its
sequential wires to ``wire_order`` first; it sends ``wire_order`` with every experiment.
The client keeps top-level keys it does not know as attributes of the configuration:
``max_instructions`` (instructions per experiment, the machine's limit) is one, for a
client or a user to read; labspool refuses an experiment with more.

Everything here is derived from the :class:`~spooler.core.backends.Backend` definition, the one
the job schema and the validation come from, so that what the client lets through is what
labspool accepts (bounds of parameters aside: a ``GateConfig`` cannot carry them, they are
stated in the gate's description).
"""

from __future__ import annotations

from typing import Any

from spooler.core.backends import Backend, Gate, Param

__all__ = ["FERMION_GATES", "FERMION_SPECIES", "client_configuration"]

# qiskit-cold-atom's fermionic gates (fermions.fermion_gate_library): a backend with one of
# them is a fermionic tweezer machine, every other one a machine of large spins.
FERMION_GATES = frozenset({"fhop", "fint", "fphase", "fhubbard", "frx", "fry", "frz"})
# A tweezer site holds two spin states, one wire each.
FERMION_SPECIES = 2
# Instructions that are not gates in qiskit's sense (not in ``basis_gates``).
_NOT_GATES = frozenset({"load", "measure", "barrier"})


def client_configuration(
    backend: Backend, *, backend_name: str | None = None, max_instructions: int | None = None
) -> dict[str, Any]:
    """The configuration document of *backend* for the qiskit-cold-atom client.

    *backend_name* is the name the client looks the backend up by (default: the backend's
    own name, e.g. ``singlequdit``; a lab would serve e.g. ``mylab_singlequdit_machine``).
    *max_instructions*: the configured ``limits.instructions_per_experiment_max``, served
    where it is below the machine's own limit (as the validation applies it).
    """
    fermionic = not FERMION_GATES.isdisjoint(backend.gates)
    if fermionic and backend.num_wires % FERMION_SPECIES:
        raise ValueError(
            f"{backend.name}: {backend.num_wires} wires are not {FERMION_SPECIES} per site"
        )
    # gates without a coupling map (barrier: any wires) cannot be a GateConfig with one,
    # and the client would fail on a gate without it: they are instructions only
    listed = [gate for _, gate in sorted(backend.gates.items()) if gate.coupling_map]
    config: dict[str, Any] = {
        "backend_name": backend_name or backend.name,
        "backend_version": backend.version,
        "display_name": backend.display_name,
        "description": backend.description,
        "cold_atom_type": "fermion" if fermionic else "spin",
        "wire_order": backend.default_wire_order,
        "n_qubits": backend.num_wires,
        "basis_gates": sorted(name for name in backend.gates if name not in _NOT_GATES),
        "gates": [_gate_config(gate) for gate in listed],
        "supported_instructions": sorted(backend.gates),
        "coupling_map": _wire_pairs(backend),
        "max_shots": backend.max_shots,
        "max_experiments": backend.max_experiments,
        "max_instructions": backend.instruction_limit(max_instructions),
        "simulator": False,
        "local": False,
        "conditional": False,
        "open_pulse": False,
        "memory": True,
    }
    if fermionic:
        # only a fermionic backend: with num_species the client converts the wires
        config["num_species"] = FERMION_SPECIES
    return config


def _gate_config(gate: Gate) -> dict[str, Any]:
    """One entry of ``gates``: only the keys qiskit's ``GateConfig`` takes."""
    names = [param.name for param in gate.params]
    return {
        "name": gate.name,
        "parameters": names,
        "qasm_def": f"gate {gate.name}({', '.join(names)}) {{}}" if names else "{}",
        "coupling_map": [list(group) for group in gate.coupling_map or ()],
        "description": _describe(gate),
    }


def _describe(gate: Gate) -> str:
    wires = "any wires" if gate.wires is None else f"{gate.wires} wire{'s' * (gate.wires > 1)}"
    return "; ".join([f"{gate.name} on {wires}", *(_describe_param(p) for p in gate.params)])


def _describe_param(param: Param) -> str:
    kind = "an integer " if param.integral else ""
    return f"{param.name}: {kind}from {param.minimum:g} to {param.maximum:.6g}"


def _wire_pairs(backend: Backend) -> list[list[int]]:
    """qiskit's top-level coupling map: the pairs of wires a gate couples, in the order of
    its wire groups (none for a machine of single-wire gates)."""
    pairs: set[tuple[int, int]] = set()
    for gate in backend.gates.values():
        for group in gate.coupling_map or ():
            pairs.update(
                (first, second) for i, first in enumerate(group) for second in group[i + 1 :]
            )
    return [list(pair) for pair in sorted(pairs)]
