"""The virtual cameras as BLACS runs them (their source alone, as labscript's FunctionRunner
executes it), read back by the shipped analysis routines."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np
import pytest

from result.routines.fermions import read_tweezers
from result.routines.spins import count_clouds
from spooler.lab import camera


def as_blacs_runs(function: Any) -> Any:
    """The function rebuilt from its source in an empty namespace, as FunctionRunner does."""
    namespace: dict[str, Any] = {"__name__": "labspool_camera", "__file__": "<string>"}
    exec(compile(textwrap.dedent(inspect.getsource(function)), "<string>", "exec"), namespace)
    return namespace[function.__name__]


class Run:
    """What the routines use of lyse's Run: the shot's path and its image."""

    def __init__(self, path: Path) -> None:
        self.h5_path = str(path)

    def get_image(self, orientation: str, label: str, image: str) -> Any:
        with h5py.File(self.h5_path, "r") as shot:
            return shot[f"images/{orientation}/{label}/{image}"][()]


def shot(tmp_path: Path, name: str, camera_function: str) -> Path:
    path = tmp_path / f"{name}.h5"
    with h5py.File(path, "w") as f:
        table = np.array([(camera_function.encode(),)], dtype=[("name", "S32")])
        f.create_dataset("devices/camera/FUNCTION_TABLE", data=table)
    return path


def test_spin_clouds_are_counted_back_in_measure_order(tmp_path: Path) -> None:
    clouds = as_blacs_runs(camera.spin_clouds)
    for n, counts in enumerate(([0, 7, 3], [20], [15, 0, 15, 1])):
        path = shot(tmp_path, f"s{n}", "spin_clouds")
        wires = [3, 0, 1, 2][: len(counts)]
        clouds(SimpleNamespace(h5_file=str(path)), 0.1, counts, wires, 50.0, 0.3, 16, [n, 1])
        row = count_clouds(Run(path))
        assert row["memory"] == " ".join(map(str, counts))
        assert row[f"atoms_wire{wires[0]}"] == counts[0]


def test_tweezer_spots_are_read_back_per_mode(tmp_path: Path) -> None:
    spots = as_blacs_runs(camera.tweezer_spots)
    occupations, wires = [1, 0, 1, 1, 0], [7, 0, 2, 5, 4]
    path = shot(tmp_path, "f", "tweezer_spots")
    spots(SimpleNamespace(h5_file=str(path)), 0.1, occupations, wires, 4, 200.0, 0.3, 8, None)
    assert read_tweezers(Run(path))["memory"] == "1 0 1 1 0"
    with h5py.File(path, "r") as f:
        assert f["images/top/fluorescence/atoms"].shape == (16, 32)


def test_a_shot_that_measured_without_its_image_is_an_error(tmp_path: Path) -> None:
    path = shot(tmp_path, "lost", "spin_clouds")
    with pytest.raises(ValueError, match="camera image"):
        count_clouds(Run(path))
    plain = tmp_path / "plain.h5"
    h5py.File(plain, "w").close()
    assert count_clouds(Run(plain)) == {"memory": ""}, "no measure, no image, no entry"
