"""labspool's virtual machines give exactly the client's distributions (qiskit-cold-atom 0.2.1).

Every job of tests/client/jobs, as the client posted it (no angle changed), run on the
virtual machines' exact state evolutions, must give the tables the client's own solvers
gave (``make_jobs.py``, in the client's venv) to 1e-9; and the random jobs' wrong models
(``jobs/wrong_models``: the rlz sign of a loaded state labelled ``m = -N/2``, a negated
fphase) must be far from them, so these tests tell the conventions apart. The same jobs
are run with shots on the virtual lab in test_machines_lab.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from spooler.virtual.fermions import TweezerFermions
from spooler.virtual.physics import LargeSpin
from tests.virtual.clientjobs import (
    CLIENT_JOBS,
    Table,
    exact_tables,
    fit,
    random_jobs,
    reference,
    wrong_model,
)

BACKENDS = ("singlequdit", "multiqudit", "fermions", "nali")
JOBS = sorted(
    p
    for backend in BACKENDS
    for p in (CLIENT_JOBS / backend).glob("*.json")
    if not p.name.endswith(".reference.json")
)


def distance(first: Table, second: Table) -> float:
    return 0.5 * math.fsum(abs(first.get(k, 0.0) - second.get(k, 0.0)) for k in {*first, *second})


@pytest.mark.parametrize("path", JOBS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_virtual_machine_gives_the_clients_distribution(path: Path) -> None:
    job = json.loads(path.read_text(encoding="utf-8"))
    got = exact_tables(path.parent.name, job)
    expected = reference(path)
    assert set(got) == set(expected)
    for name in expected:
        assert distance(got[name], expected[name]) < 1e-9, (path.name, name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_machine_has_random_jobs_whose_wrong_model_is_far(backend: str) -> None:
    paths = random_jobs(backend)
    assert paths, f"no random jobs for {backend}: run make_jobs.py (tests/client/README.md)"
    manifest = json.loads((CLIENT_JOBS / "manifest.json").read_text(encoding="utf-8"))
    experiments = shots = 0
    for path in paths:
        job = json.loads(path.read_text(encoding="utf-8"))
        expected = reference(path)
        _, wrong = wrong_model(path)
        assert set(wrong) == set(expected) == set(job)
        for name in job:
            assert distance(wrong[name], expected[name]) >= 0.35
            experiments += 1
            shots += job[name]["shots"]
        assert manifest[f"{backend}/{path.stem}"]["wrong_model"]
    assert experiments >= 5 and shots >= 300, (experiments, shots)


def test_the_measured_level_and_the_sign_of_rlz() -> None:
    """The client's numbering: level 0 is loaded, level k is m = l - k (SpinOp's
    ``Z = diag(l, ..., -l)``), rlx(pi) takes every atom out of level 0, and rlz(theta)
    multiplies level k by ``exp(-i theta (l - k))``."""
    spin = LargeSpin(4)
    assert spin.level_probabilities()[0] == 1.0
    spin.rlx(math.pi)
    assert spin.level_probabilities()[4] == pytest.approx(1.0)
    spin = LargeSpin(4)
    spin.rlx(1.0)
    before = spin.state.copy()
    spin.rlz(0.3)
    np.testing.assert_allclose(spin.state, np.exp(-0.3j * np.array([2, 1, 0, -1, -2])) * before)


def test_the_fit_accepts_the_truth_and_rejects_a_wrong_model() -> None:
    rng = np.random.default_rng(5)
    right = {"0": 0.5, "1": 0.3, "2": 0.2}
    wrong = {"0": 0.2, "1": 0.3, "2": 0.5}
    memories = [list(rng.choice(list(right), 80, p=list(right.values()))) for _ in range(4)]
    assert fit(memories, [right] * 4) > 1e-3
    assert fit(memories, [wrong] * 4) < 1e-6
    assert fit([["0"] * 99 + ["3"]], [right]) == 0.0  # an outcome of no probability


def test_fermions_jordan_wigner_is_the_clients_sequential_order() -> None:
    """An up fermion hopping past a down one. In the client's sequential numbering the up
    modes of neighbouring sites are neighbours: ``f+_{1 up} f_{0 up}`` takes the basis state
    of (0 up, 0 down) to that of (1 up, 0 down) with the sign +1, so to first order the hop
    ``exp(i theta (f+ f + h.c.))`` gives it the amplitude ``+i theta``. (Interleaved, the
    down mode of site 0 lies between: ``-i theta``. The occupations show neither.)"""
    tweezers = TweezerFermions()
    tweezers.load(0)  # site 0 up
    tweezers.load(1)  # site 0 down: between the up modes of sites 0 and 1 when interleaved
    before = tweezers.state.copy()
    tweezers.fhop((0, 1, 2, 3), 1e-4)
    moved = 0b1 << 2 | 0b1 << 1  # site 1 up, site 0 down
    assert tweezers.state[moved] / before[0b11] == pytest.approx(1j * 1e-4, rel=1e-3)
