"""Analysis routines of ``bench_scaleout.py``: a CPU-bound one, and one that does nothing.

They run wherever the executor runs a shot (the benchmark's own process, pool workers,
Dask workers), which import this module as ``bench_routines``: the benchmark puts this
folder on ``PYTHONPATH`` before any executor starts.

``burn`` does a fixed amount of work (``$LABSPOOL_BENCH_BURN_ITERATIONS`` steps of a
pure-Python linear congruential generator, default :data:`ITERATIONS`, about 0.15 s on an
idle core of the lab's analysis machine), not a fixed time, so its result is the same
wherever and however fast it runs: the generator's last state, seeded by the shot's atom
count.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["ITERATIONS", "burn", "iterations", "nothing", "spin"]

ITERATIONS = 1_450_000  # about 0.15 s on an idle core of this 2-core machine
ENV_VAR = "LABSPOOL_BENCH_BURN_ITERATIONS"
IMAGE = "images/top/fluorescence/atoms"


def iterations() -> int:
    return int(os.environ.get(ENV_VAR, ITERATIONS))


def spin(seed: int, steps: int) -> int:
    """*steps* steps of a 32-bit linear congruential generator from *seed*: its last state."""
    x = seed & 0xFFFFFFFF
    for _ in range(steps):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def burn(run: Any) -> dict[str, Any]:
    """CPU-bound work seeded by the shot's atoms (counted as ``count_atoms`` counts them)."""
    import h5py

    with h5py.File(run.h5_path, "r") as shot:
        image = shot[IMAGE][()]
        signal_per_atom = float(shot[IMAGE].attrs["signal_per_atom"])
    atoms = round(float(image.sum()) / signal_per_atom)
    return {"burned": spin(atoms, iterations())}


def nothing(run: Any) -> dict[str, Any]:
    """No work at all: what is left of a shot's time is the executor's and labspool's."""
    return {}
