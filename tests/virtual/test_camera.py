"""The virtual cameras as BLACS runs them (their source alone, as labscript's FunctionRunner
executes it), read back by the shipped analysis routines."""

from __future__ import annotations

import inspect
import json
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np
import pytest

from result.routines.fermions import read_tweezers
from result.routines.spins import count_clouds
from spooler.virtual import camera


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


def test_a_fault_on_demand_fails_the_chosen_jobs_next_shots_then_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = tmp_path / "faults.json"
    monkeypatch.setenv(camera.FAULTS_ENV, str(faults))
    clouds = as_blacs_runs(camera.spin_clouds)
    camera.add_fault(faults, "camera", job_id="bad", shots=2, message="camera overheated")

    def take(job_id: str | None, n: int) -> None:
        path = shot(tmp_path, f"{job_id}{n}", "spin_clouds")
        clouds(SimpleNamespace(h5_file=str(path)), 0.1, [3], [0], 50.0, 0.3, 8, None, job_id)

    take("good", 0)  # another job's shot is not touched
    take(None, 0)  # nor a shot of no job
    with pytest.raises(RuntimeError, match=r"^camera overheated$"):
        take("bad", 0)
    assert json.loads(faults.read_text())["camera"][0]["shots"] == 1, "counted down"
    with pytest.raises(RuntimeError, match=r"^camera overheated$"):
        take("bad", 1)
    assert camera.read_faults(faults) == {"camera": []}, "used up, it is removed"
    take("bad", 2)
    camera.add_fault(faults, "camera", shots=None)  # any job, every shot
    for job_id in ("a", "b", None):
        with pytest.raises(RuntimeError, match="injected fault"):
            take(job_id, 3)
    assert camera.clear_faults(faults) == 1
    take("a", 4)


def test_faults_are_counted_down_exactly_by_concurrent_cameras(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    camera.add_fault(faults, "camera", job_id="j", shots=50, message="m")
    taken: list[str | None] = []
    threads = [
        threading.Thread(
            target=lambda: taken.extend(camera.take_fault(faults, "camera", "j") for _ in range(10))
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert taken.count("m") == 50 and taken.count(None) == 30


def test_no_variable_no_file_or_a_broken_file_fail_no_shot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(camera.FAULTS_ENV, raising=False)
    camera.raise_injected_fault("camera", "j")
    monkeypatch.setenv(camera.FAULTS_ENV, str(tmp_path / "none.json"))
    camera.raise_injected_fault("camera", "j")
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setenv(camera.FAULTS_ENV, str(tmp_path / "broken.json"))
    camera.raise_injected_fault("camera", "j")
    with pytest.raises(ValueError, match="no virtual device"):
        camera.add_fault(tmp_path / "f.json", "laser")
