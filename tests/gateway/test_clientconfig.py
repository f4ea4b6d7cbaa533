"""The configuration the qiskit-cold-atom client reads, and the jobs the client made from it.

The client's side (qiskit-terra 0.23, qiskit-cold-atom 0.2.1) runs in its own venv
(tests/client/README.md); here: what the released client needs of the document, checked
without it, and the files it left in tests/client (its jobs must pass labspool's validation).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from spooler.core.backends import BACKENDS
from spooler.core.settings import Limits
from spooler.gateway.clientconfig import client_configuration
from spooler.pipeline.validation import JobValidator

CLIENT = Path(__file__).resolve().parents[1] / "client"
# qiskit's GateConfig(**gate) takes these keys and no other (the client fails on any other)
GATE_CONFIG_KEYS = {"name", "parameters", "qasm_def", "coupling_map", "latency_map"} | {
    "conditional",
    "description",
}
# QasmBackendConfiguration's required arguments, and what the client's checks read
REQUIRED = {
    "backend_name": str,
    "backend_version": str,
    "n_qubits": int,
    "basis_gates": list,
    "gates": list,
    "local": bool,
    "simulator": bool,
    "conditional": bool,
    "open_pulse": bool,
    "memory": bool,
    "coupling_map": list,
    "max_shots": int,
    "max_experiments": int,
    "supported_instructions": list,
    "cold_atom_type": str,
    "wire_order": str,
    "display_name": str,
    "description": str,
}
NAMES = sorted(BACKENDS)


def sequential_to_interleaved(wires: list[int], sites: int, species: int = 2) -> list[int]:
    """The client's conversion (CircuitTools.convert_wire_order, sort=True, v0.2.1)."""
    return sorted(w % sites * species + w // sites for w in wires)


@pytest.mark.parametrize("name", NAMES)
def test_the_document_has_what_the_client_reads(name: str) -> None:
    backend = BACKENDS[name]
    config = client_configuration(backend)
    for key, kind in REQUIRED.items():
        assert isinstance(config[key], kind), key
    assert config["backend_name"] == name
    assert config["n_qubits"] == backend.num_wires
    assert (config["max_shots"], config["max_experiments"]) == (
        backend.max_shots,
        backend.max_experiments,
    )
    assert config["backend_version"] == backend.version
    assert config["display_name"] == backend.display_name
    assert config["supported_instructions"] == sorted(backend.gates)
    assert set(config["basis_gates"]) == set(backend.gates) - {"load", "measure", "barrier"}
    # strict JSON: what the HTTP answer will be
    assert json.loads(json.dumps(config, allow_nan=False)) == config


@pytest.mark.parametrize("name", NAMES)
def test_the_instruction_limit_is_served(name: str) -> None:
    """A top-level key: the client keeps it as an attribute of its configuration."""
    backend = BACKENDS[name]
    config = client_configuration(backend)
    assert config["max_instructions"] == backend.max_instructions
    # a configured limit lowers it, never raises it
    assert client_configuration(backend, max_instructions=7)["max_instructions"] == 7
    unchanged = client_configuration(backend, max_instructions=10**6)
    assert unchanged["max_instructions"] == backend.max_instructions


@pytest.mark.parametrize("name", NAMES)
def test_every_gate_with_a_coupling_map_is_listed_with_it(name: str) -> None:
    backend = BACKENDS[name]
    gates = {g["name"]: g for g in client_configuration(backend)["gates"]}
    assert set(gates) == {n for n, g in backend.gates.items() if g.coupling_map is not None}
    assert "barrier" not in gates  # any wires: the client must not look for a coupling map
    for gate_name, entry in gates.items():
        assert set(entry) <= GATE_CONFIG_KEYS
        gate = backend.gates[gate_name]
        assert entry["coupling_map"] == [list(group) for group in gate.coupling_map or ()]
        assert entry["coupling_map"]  # GateConfig drops an empty one; the client then fails
        assert entry["parameters"] == [p.name for p in gate.params]
        assert isinstance(entry["qasm_def"], str) and isinstance(entry["description"], str)


def test_the_kinds_of_machine() -> None:
    for name in ("singlequdit", "multiqudit", "nali"):
        config = client_configuration(BACKENDS[name])
        assert config["cold_atom_type"] == "spin"
        assert config["wire_order"] == "sequential"
        assert "num_species" not in config  # the client would convert the wires
    fermions = client_configuration(BACKENDS["fermions"])
    assert fermions["cold_atom_type"] == "fermion"
    assert fermions["wire_order"] == "interleaved"
    assert fermions["num_species"] == 2


def test_the_top_level_coupling_map_pairs_the_coupled_wires() -> None:
    assert client_configuration(BACKENDS["singlequdit"])["coupling_map"] == []
    assert client_configuration(BACKENDS["nali"])["coupling_map"] == []
    multi = client_configuration(BACKENDS["multiqudit"])["coupling_map"]
    assert multi == [[0, 1], [1, 2], [2, 3]]
    fermions = client_configuration(BACKENDS["fermions"])["coupling_map"]
    assert fermions == [[a, b] for a in range(8) for b in range(a + 1, 8)]  # fint: all


def test_a_lab_names_its_backend() -> None:
    config = client_configuration(BACKENDS["nali"], backend_name="mylab_nali_machine")
    assert config["backend_name"] == "mylab_nali_machine"
    assert config["display_name"] == "NaLi"


@pytest.mark.parametrize("sites", [2, 3, 4])
def test_the_clients_fermion_gates_convert_into_the_coupling_maps(sites: int) -> None:
    """A circuit of *sites* tweezers in the client's sequential order (site i up: wire i,
    down: wire sites + i): its gates, converted as the client converts them, are allowed."""
    gates = {
        g["name"]: g["coupling_map"] for g in client_configuration(BACKENDS["fermions"])["gates"]
    }
    for a in range(sites - 1):
        hop = [a, a + 1, sites + a, sites + a + 1]
        assert sequential_to_interleaved(hop, sites) in gates["fhop"]
    for i in range(sites):
        assert sequential_to_interleaved([i, sites + i], sites) in gates["fphase"]
        for wire in (i, sites + i):
            assert sequential_to_interleaved([wire], sites) in gates["load"]
            assert sequential_to_interleaved([wire], sites) in gates["measure"]
    everything = sequential_to_interleaved(list(range(2 * sites)), sites)
    assert (everything in gates["fint"]) == (sites == 4)  # fint acts on all four sites


def test_qiskit_reads_the_document() -> None:
    # qiskit 2 has no qiskit.providers.models (the client's qiskit-terra 0.23 has; the
    # client venv's make_jobs.py builds every backend from the exported documents)
    models = pytest.importorskip("qiskit.providers.models")
    for backend in BACKENDS.values():
        config = models.QasmBackendConfiguration.from_dict(client_configuration(backend))
        assert config.num_qubits == backend.num_wires


@pytest.mark.parametrize("name", NAMES)
def test_the_exported_configuration_is_up_to_date(name: str) -> None:
    path = CLIENT / "configs" / f"{name}.json"
    exported = json.loads(path.read_text(encoding="utf-8"))
    assert exported == client_configuration(BACKENDS[name]), (
        "run python tests/client/export_configs.py and tests/client/make_jobs.py again "
        "(tests/client/README.md)"
    )


def _client_jobs() -> list[Path]:
    return sorted(p for p in CLIENT.glob("jobs/*/*.json") if not p.name.endswith(".reference.json"))


def test_the_client_made_jobs_for_every_backend() -> None:
    assert {p.parent.name for p in _client_jobs()} == set(BACKENDS)


@pytest.mark.parametrize("path", _client_jobs(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_labspool_accepts_the_clients_jobs(path: Path) -> None:
    backend = BACKENDS[path.parent.name]
    job = JobValidator(backend, Limits()).validate_bytes(path.read_bytes())
    assert len(job.experiments) >= 1


@pytest.mark.parametrize("path", _client_jobs(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_reference_tables_fit_their_jobs(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    reference = json.loads(path.with_suffix(".reference.json").read_text(encoding="utf-8"))
    manifest = json.loads((CLIENT / "jobs" / "manifest.json").read_text(encoding="utf-8"))
    entry = manifest[f"{path.parent.name}/{path.stem}"]
    assert entry["experiments"] == len(document) and entry["max_deviation_from_1"] <= 1e-9
    assert set(reference) == set(document)
    for index, (name, experiment) in enumerate(sorted(document.items(), key=_number)):
        measured = [i[1] for i in experiment["instructions"] if i[0] == "measure"]
        assert all(len(wires) == 1 for wires in measured)
        # what a measured wire reads: a fermionic mode's occupation, a spin's atoms up
        top = 1 if path.parent.name == "fermions" else entry["atoms_per_wire"][index]
        for memory, probability in reference[name].items():
            values = [int(v) for v in memory.split(" ")]
            assert len(values) == len(measured)
            assert all(0 <= v <= top for v in values), memory
            assert 0 < probability <= 1 + 1e-12
        assert math.isclose(math.fsum(reference[name].values()), 1.0, abs_tol=1e-9)


def _number(item: tuple[str, Any]) -> int:
    return int(item[0].removeprefix("experiment_"))
