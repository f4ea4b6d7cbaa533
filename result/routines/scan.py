"""A scan: the one instruction parameter that differs between a job's experiments.

:func:`scan_axis` finds it when the experiments have the same instructions (the same gates
on the same wires, in the same order) and exactly one parameter of one instruction differs
between them, taking a different value in each experiment; it names it by its gate and
wires in its unit (``rlx angle θ on wire 0 (rad)``, ``fint angle θ on wires 0–7 (rad)``).
Otherwise (one experiment, several parameters or none differing, a value repeated,
different gates, an unknown gate or backend, odd instructions) there is no scan. The
instructions are a job file's, untrusted: each value is checked, and nothing in them can
raise. The picture (:mod:`result.routines.picture`) draws a scan against its parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spooler.core.backends import BACKENDS

__all__ = ["INSTRUCTIONS_MAX", "Scan", "scan_axis"]

_PARAMETERS = {"theta": ("angle θ", "rad"), "atoms": ("atom number", "")}
INSTRUCTIONS_MAX = 10_000  # in the whole job, read for a scan (the machines allow 3000)


@dataclass(frozen=True)
class Scan:
    """The x axis of a scan: its label, its unit, each experiment's value."""

    label: str
    unit: str
    values: dict[str, float]  # experiment name -> the scanned parameter's value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _instructions(experiment: object) -> list[tuple[str, tuple[int, ...], list[float]]] | None:
    """An experiment's instructions as (gate, wires, parameters), None if any is odd."""
    if not isinstance(experiment, Mapping):
        return None
    raw = experiment.get("instructions")
    if not isinstance(raw, list):
        return None
    out = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 3:
            return None
        name, wires, params = item
        if not isinstance(name, str) or not isinstance(wires, list) or not isinstance(params, list):
            return None
        if not all(isinstance(w, int) and not isinstance(w, bool) for w in wires):
            return None
        numbers = [_number(p) for p in params]
        if any(n is None for n in numbers):
            return None
        out.append((name, tuple(wires), [n for n in numbers if n is not None]))
    return out


def scan_axis(backend: str, experiments: Mapping[str, Any], names: list[str]) -> Scan | None:
    """The scan of the experiments *names* (see the module's text), or None: the index."""
    machine = BACKENDS.get(backend)
    if machine is None or len(names) < 2 or not isinstance(experiments, Mapping):
        return None
    sequences = [_instructions(experiments.get(name)) for name in names]
    if any(s is None for s in sequences):
        return None
    checked = [s for s in sequences if s is not None]
    if sum(len(s) for s in checked) > INSTRUCTIONS_MAX:
        return None
    shape = [(gate, wires, len(params)) for gate, wires, params in checked[0]]
    if any([(g, w, len(p)) for g, w, p in s] != shape for s in checked[1:]):
        return None
    varying = [
        (i, j)
        for i, (_, _, count) in enumerate(shape)
        for j in range(count)
        if len({s[i][2][j] for s in checked}) > 1
    ]
    if len(varying) != 1:
        return None
    (i, j) = varying[0]
    gate_name, wires, _ = shape[i]
    values = [s[i][2][j] for s in checked]
    gate = machine.gates.get(gate_name)
    if len(set(values)) != len(values) or gate is None or j >= len(gate.params):
        return None
    words, unit = _PARAMETERS.get(gate.params[j].name, (gate.params[j].name, ""))
    same = [k for k, (g, w, _) in enumerate(shape) if (g, w) == (gate_name, wires)]
    nth = "" if len(same) == 1 else f"the {_ordinal(same.index(i) + 1)} "
    label = f"{nth}{gate_name} {words} on {_wires(wires)}" + (f" ({unit})" if unit else "")
    return Scan(label, unit, dict(zip(names, values, strict=True)))


def _wires(wires: tuple[int, ...]) -> str:
    if len(wires) == 1:
        return f"wire {wires[0]}"
    if len(wires) > 2 and list(wires) == list(range(wires[0], wires[0] + len(wires))):
        return f"wires {wires[0]}–{wires[-1]}"
    return "wires " + ", ".join(str(w) for w in wires)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
