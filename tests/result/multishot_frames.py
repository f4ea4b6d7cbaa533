"""Jobs for the multi-shot tests, made without lyse: DataFrames shaped like the ones
``result.outputs.experiment_frame`` makes (lyse's hierarchical columns, a row per shot in
shot order, the memory routine's ``memory`` column), from random draws."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas

from result.multishot import MultishotInput, job_frame

FINISHED_AT = 1_773_500_966.0  # 2026-03-14T15:09:26Z


def shot_flat(job_id: str, experiment: str, shot: int, entry: str) -> dict[tuple[str, ...], Any]:
    """A shot's flat dictionary as ``result.task.shot_row`` keeps it in the ledger (a few of
    lyse's columns): globals one level deep, the routine's results two."""
    flat: dict[tuple[str, ...], Any] = {
        ("sequence",): "20260314T150000",
        ("labspool_job_id",): job_id,
        ("labspool_experiment",): experiment,
        ("labspool_shot",): shot,
        ("filepath",): f"/sds/{job_id}/{experiment}/{shot:04d}.h5",
        ("count_atoms", "memory"): entry,
    }
    if entry.split():
        flat[("count_atoms", "atoms")] = int(float(entry.split()[0]))
    return flat


def flat_frame(flats: Iterable[dict[tuple[str, ...], Any]]) -> Any:
    """What lyse makes of such dictionaries (``flat_dict_to_hierarchical_dataframe`` and
    ``concat_with_padding``): keys padded with ``""`` to the same depth (two at least),
    sorted columns, a row each in order."""
    flats = list(flats)
    depth = max([2, *(len(key) for flat in flats for key in flat)])
    rows = [{key + ("",) * (depth - len(key)): v for key, v in flat.items()} for flat in flats]
    columns = pandas.MultiIndex.from_tuples(sorted({key for row in rows for key in row}))
    return pandas.DataFrame(rows, columns=columns)


def lyse_like_frame(job_id: str, experiment: str, memory: list[str]) -> Any:
    return flat_frame(shot_flat(job_id, experiment, i, entry) for i, entry in enumerate(memory))


def job_of(
    memory: dict[str, list[str]],
    *,
    job_id: str = "flop",
    backend: str = "singlequdit",
    finished_at: float = FINISHED_AT,
) -> MultishotInput:
    frames = {name: lyse_like_frame(job_id, name, entries) for name, entries in memory.items()}
    return MultishotInput(
        job_id=job_id,
        backend=backend,
        finished_at=finished_at,
        frames=frames,
        frame=job_frame(frames),
        memory=memory,
    )


def rabi_p(k: int, experiments: int, scan: float) -> float:
    """The upper state's population after experiment k's rotation by k·scan/(experiments-1)."""
    return math.sin(k * scan / (experiments - 1) / 2) ** 2


def rabi_memory(
    experiments: int = 15,
    shots: int = 100,
    atoms: int = 100,
    *,
    scan: float = 2 * math.pi,
    seed: int = 7,
) -> dict[str, list[str]]:
    """A Rabi scan: each shot counts the atoms in the upper state, a binomial draw of
    :func:`rabi_p`."""
    rng = np.random.default_rng(seed)
    return {
        f"experiment_{k}": [
            str(n) for n in rng.binomial(atoms, rabi_p(k, experiments, scan), shots)
        ]
        for k in range(experiments)
    }


def wires_memory(
    wires: int,
    *,
    experiments: int = 6,
    shots: int = 40,
    draw: Callable[[np.random.Generator, int, int], int] | None = None,
    seed: int = 3,
) -> dict[str, list[str]]:
    """Shots of *wires* values each ("3 0 7"): by default a binomial of 20 atoms per wire,
    wire w rotating w + 1 times as fast; *draw(rng, experiment, wire)* otherwise."""
    rng = np.random.default_rng(seed)

    def default(rng: np.random.Generator, k: int, w: int) -> int:
        p = math.sin((w + 1) * k * math.pi / (2 * max(experiments - 1, 1))) ** 2
        return int(rng.binomial(20, p))

    pick = draw or default
    return {
        f"experiment_{k}": [
            " ".join(str(pick(rng, k, w)) for w in range(wires)) for _ in range(shots)
        ]
        for k in range(experiments)
    }
