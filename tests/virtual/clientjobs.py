"""The client's jobs (tests/client/jobs) on labspool's exact simulators, and a fit of shots to them.

``exact_tables`` runs a job as posted by qiskit-cold-atom (its instructions, wires and
parameters untouched) on the virtual machines' own state evolutions
(:class:`~spooler.virtual.physics.LargeSpin`, :class:`~spooler.virtual.spins.SpinRegister`,
:class:`~spooler.virtual.fermions.TweezerFermions`) and gives the exact distribution of
each experiment's memory entry: it must be the client's solvers' (``<name>.reference.json``).
``fit`` is one chi-square test of the memory of every experiment of a job against a set of
tables (the client's, or a wrong model's, ``jobs/wrong_models``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from spooler.virtual.fermions import TweezerFermions
from spooler.virtual.physics import LargeSpin
from spooler.virtual.spins import SpinRegister

__all__ = [
    "CLIENT_JOBS",
    "NALI_ATOMS",
    "Table",
    "exact_tables",
    "fit",
    "marginals",
    "random_jobs",
    "wrong_model",
]

CLIENT_JOBS = Path(__file__).parents[1] / "client" / "jobs"
NALI_ATOMS = 20  # config/apparatus/nali.py's ATOMS_PER_WIRE, as make_jobs.NALI_ATOMS
Table = dict[str, float]
GATES = {"rLx": "rlx", "rLz": "rlz", "rLz2": "rlz2"}  # nali's names


def _key(values: tuple[int, ...] | list[int]) -> str:
    return " ".join(map(str, values))


def _split(experiment: dict[str, Any]) -> tuple[list[list[Any]], list[int]]:
    """The gates (loads included) and the measured wires, in order."""
    gates: list[list[Any]] = []
    measured: list[int] = []
    for name, wires, params in experiment["instructions"]:
        if name == "measure":
            measured.extend(int(w) for w in wires)
        elif name != "barrier":
            gates.append([name, [int(w) for w in wires], [float(p) for p in params]])
    return gates, measured


def _singlequdit(gates: list[list[Any]], measured: list[int]) -> Table:
    spin: LargeSpin | None = None
    for name, _, params in gates:
        if name == "load":
            spin = LargeSpin(int(params[0]))
        elif spin is not None:
            getattr(spin, name)(params[0])
    p = [1.0] if spin is None else [float(q) for q in spin.level_probabilities()]
    return {_key([k] * len(measured)): q for k, q in enumerate(p)}


def _register(gates: list[list[Any]], measured: list[int], atoms: int | None) -> Table:
    """multiqudit (*atoms* None: the loads say) or nali (every wire *atoms* atoms, no load,
    each wire on its own: nothing couples them)."""
    if atoms is None:
        spins = SpinRegister()
        for name, wires, params in gates:
            if name == "load":
                spins.load(wires[0], int(params[0]))
            else:
                getattr(spins, GATES.get(name, name))(*wires, params[0])
        p = spins.probabilities(measured)
        return {_key(list(i)): float(p[i]) for i in np.ndindex(p.shape)}
    joint: dict[tuple[int, ...], float] = {(): 1.0}
    for wire in measured:
        spin = SpinRegister()
        spin.load(wire, atoms)
        for name, wires, params in gates:
            if wires == [wire]:
                getattr(spin, GATES[name])(wire, params[0])
        q = spin.probabilities([wire])
        joint = {(*k, n): v * float(q[n]) for k, v in joint.items() for n in range(atoms + 1)}
    return {_key(list(k)): v for k, v in joint.items()}


def _fermions(gates: list[list[Any]], measured: list[int]) -> Table:
    tweezers = TweezerFermions()
    for name, wires, params in gates:
        if name == "load":
            tweezers.load(wires[0])
        elif name == "fint":
            tweezers.fint(params[0])
        else:
            getattr(tweezers, name)(tuple(wires), params[0])
    return {_key(list(k)): p for k, p in tweezers.marginal(measured).items()}


def exact_tables(backend: str, job: dict[str, Any]) -> dict[str, Table]:
    """Per experiment of the posted *job*: the exact distribution of its memory entry on
    labspool's virtual machine of *backend* (outcomes of no probability left out)."""
    tables = {}
    for name, experiment in job.items():
        gates, measured = _split(experiment)
        if backend == "singlequdit":
            table = _singlequdit(gates, measured)
        elif backend == "fermions":
            table = _fermions(gates, measured)
        else:
            table = _register(gates, measured, NALI_ATOMS if backend == "nali" else None)
        tables[name] = {k: p for k, p in table.items() if p > 1e-13}
    return tables


def random_jobs(backend: str) -> list[Path]:
    """The random jobs of *backend* (those with a wrong model)."""
    return sorted(
        p
        for p in (CLIENT_JOBS / backend).glob("random*.json")
        if not p.name.endswith(".reference.json")
    )


def reference(path: Path) -> dict[str, Table]:
    return json.loads(path.with_suffix(".reference.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def wrong_model(path: Path) -> tuple[str, dict[str, Table]]:
    """What the wrong model of a random job is, and its tables."""
    document = json.loads(
        (CLIENT_JOBS / "wrong_models" / path.parent.name / path.name).read_text(encoding="utf-8")
    )
    return str(document["model"]), document["tables"]


def marginals(table: Table) -> list[Table]:
    """The distribution of each value of a memory entry alone."""
    width = len(next(iter(table)).split(" "))
    out: list[Table] = [{} for _ in range(width)]
    for key, p in table.items():
        for i, value in enumerate(key.split(" ")):
            out[i][value] = out[i].get(value, 0.0) + p
    return out


def _statistic(memory: list[str], expected: Table) -> tuple[float, int]:
    """Pearson's statistic and its degrees of freedom; outcomes expected fewer than 5 times
    are pooled into one bin with anything unexpected (an outcome of no probability seen:
    infinite)."""
    shots = len(memory)
    seen: dict[str, int] = {}
    for entry in memory:
        seen[entry] = seen.get(entry, 0) + 1
    big = [k for k, p in expected.items() if p * shots >= 5]
    observed = [float(seen.get(k, 0)) for k in big]
    means = [expected[k] * shots for k in big]
    rest_observed, rest_mean = shots - sum(observed), shots - sum(means)
    if rest_mean > 1e-9 or rest_observed:
        if rest_mean <= 1e-9:
            return math.inf, max(len(observed), 1)
        observed.append(rest_observed)
        means.append(rest_mean)
    statistic = math.fsum((o - m) ** 2 / m for o, m in zip(observed, means, strict=True))
    return statistic, len(observed) - 1


def fit(memories: list[list[str]], tables: list[Table], *, per_value: bool = False) -> float:
    """The p-value of one chi-square test of every experiment's memory against its table
    (statistics and degrees of freedom summed: the experiments are independent). With
    *per_value*, each value of the entry (a measured wire) is tested alone and summed too:
    right when they are independent (nali's wires), and few shots fill a joint table of
    many outcomes poorly."""
    from scipy import stats

    total, dof = 0.0, 0
    for memory, table in zip(memories, tables, strict=True):
        if per_value:
            parts = [
                ([entry.split(" ")[i] for entry in memory], marginal)
                for i, marginal in enumerate(marginals(table))
            ]
        else:
            parts = [(memory, table)]
        for values, expected in parts:
            statistic, degrees = _statistic(values, expected)
            total += statistic
            dof += degrees
    if math.isinf(total):
        return 0.0
    return float(stats.chi2.sf(total, max(dof, 1)))
