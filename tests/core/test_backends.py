from __future__ import annotations

import math

import jsonschema
import pytest

from spooler.core.backends import BACKENDS, get_backend


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = BACKENDS[name].json_schema(10_000)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_schema_is_derived_from_the_gate_table(name: str) -> None:
    backend = BACKENDS[name]
    schema = backend.json_schema(77)
    instruction = schema["additionalProperties"]["properties"]["instructions"]
    assert instruction["maxItems"] == 77
    assert instruction["items"]["prefixItems"][0]["enum"] == sorted(backend.gates)
    assert schema["maxProperties"] == backend.max_experiments
    shots = schema["additionalProperties"]["properties"]["shots"]
    assert shots["maximum"] == backend.max_shots
    branches = {
        b["if"]["prefixItems"][0]["const"]: b["then"] for b in instruction["items"]["allOf"]
    }
    for gate_name, gate in backend.gates.items():
        params = branches[gate_name]["prefixItems"][2]
        assert params["maxItems"] == len(gate.params)
        for spec, param in zip(params.get("prefixItems", []), gate.params, strict=True):
            assert (spec["minimum"], spec["maximum"]) == (param.minimum, param.maximum)


def test_the_four_machines_as_the_issue_defines_them() -> None:
    single = get_backend("singlequdit")
    assert single.num_wires == 1 and single.max_shots == 1000 and single.max_experiments == 15
    assert set(single.gates) == {"rlx", "rlz", "rlz2", "load", "measure", "barrier"}
    assert single.gates["rlx"].params[0].maximum == pytest.approx(2 * math.pi)
    assert single.gates["rlz2"].params[0].maximum == pytest.approx(20 * math.pi)
    load = single.gates["load"].params[0]
    assert (load.minimum, load.maximum, load.integral) == (1, 500, True)

    multi = get_backend("multiqudit")
    assert multi.num_wires == 4
    assert multi.gates["rlxly"].coupling_map == ((0, 1), (1, 2), (2, 3))
    assert multi.gates["rlzlz"].params[0].maximum == pytest.approx(20 * math.pi)
    assert multi.gates["barrier"].wires is None

    fermions = get_backend("fermions")
    assert fermions.num_wires == 8 and fermions.default_wire_order == "interleaved"
    assert fermions.gates["fhop"].coupling_map == ((0, 1, 2, 3), (2, 3, 4, 5), (4, 5, 6, 7))
    assert fermions.gates["fint"].coupling_map == ((0, 1, 2, 3, 4, 5, 6, 7),)
    assert fermions.gates["fphase"].coupling_map == ((0, 1), (2, 3), (4, 5), (6, 7))
    assert fermions.gates["load"].params == ()

    nali = get_backend("nali")
    assert set(nali.gates) == {"rLx", "rLz", "rLz2", "measure", "barrier"}
    assert (nali.num_wires, nali.max_shots, nali.max_experiments) == (5, 60, 3)


def test_unknown_backend() -> None:
    with pytest.raises(KeyError, match="known: fermions"):
        get_backend("toaster")
