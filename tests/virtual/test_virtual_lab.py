"""End to end on the embedded virtual lab: the genuine runmanager and BLACS, offscreen.

The spooler runs as its own process against them; BLACS's plugin writes the address files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from spooler.virtual.lab import descendants, process_alive
from tests.labtools import (
    VirtualLab,
    binomial_p_value,
    cli,
    in_lab,
    lab_role,
    needs_suite,
    virtual_lab,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow, needs_suite]

SIGNAL_PER_ATOM = 50.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualLab]:
    # no result daemon here: no shot counts as made, so the look-ahead is opened wide
    with virtual_lab(
        tmp_path_factory.mktemp("virtual") / "lab", look_ahead_jobs=100, look_ahead_shots=100_000
    ) as running:
        yield running


def experiment(
    angle: float, shots: int, atoms: int = 50, *, measure: bool = True, seed: int | None = None
) -> dict[str, object]:
    instructions: list[list[object]] = [["load", [0], [float(atoms)]], ["rlx", [0], [angle]]]
    if measure:
        instructions.append(["measure", [0], []])
    body: dict[str, object] = {
        "instructions": instructions,
        "num_wires": 1,
        "shots": shots,
        "wire_order": "sequential",
    }
    if seed is not None:
        body["seed"] = seed
    return body


def atoms_measured(shot: Path) -> int | None:
    with h5py.File(shot, "r") as f:
        if "images/top/fluorescence/atoms" not in f:
            return None
        return round(float(f["images/top/fluorescence/atoms"][()].sum()) / SIGNAL_PER_ATOM)


def test_three_jobs_run_through_runmanager_and_blacs(lab: VirtualLab, tmp_path: Path) -> None:
    jobs = {
        "rabi5": {
            f"experiment_{i}": experiment(a, 4, seed=11)
            for i, a in enumerate([0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4, math.pi])
        },
        "single20": {"experiment_0": experiment(math.pi / 2, 20, atoms=30, seed=12)},
        "pair7": {
            "experiment_0": experiment(1.0, 7, atoms=20),
            "experiment_1": experiment(1.0, 7, measure=False),
        },
    }
    for job_id, job in jobs.items():
        lab.submit(job_id, job, tmp_path)
    for job_id, job in jobs.items():
        total = sum(e["shots"] for e in job.values())  # type: ignore[misc]
        addresses = lab.wait_for_addresses(job_id, total)
        status = lab.status(job_id)
        states = [h["status"] for h in status["history"]]
        assert states[:3] == ["INITIALIZING", "QUEUED", "RUNNING"], states
        assert status["status"] == "RUNNING"
        assert status["shots_expected"] == total  # runmanager's n_shots, recorded by the spooler
        shots_made = sorted((lab.settings.folders.shots / job_id).glob("*/*.h5"))
        assert len(shots_made) == total
        for shot in shots_made:
            with h5py.File(shot, "r") as f:
                assert "data" in f, f"{shot} was not run by BLACS"
        # Exactly one address file per shot, naming it, its job and experiment.
        assert sorted(Path(a["shot"]) for a in addresses) == shots_made
        assert len({a["shot"] for a in addresses}) == len(addresses)
        for a in addresses:
            assert Path(a["shot"]).parent.name == a["experiment"]
        for name, body in job.items():
            made = list((lab.settings.folders.shots / job_id / name).glob("*.h5"))
            assert len(made) == body["shots"]
    # The physics: rlx 0 leaves every atom down, rlx pi flips all 50.
    assert {
        atoms_measured(p)
        for p in (lab.settings.folders.shots / "rabi5" / "experiment_0").glob("*.h5")
    } == {0}
    assert {
        atoms_measured(p)
        for p in (lab.settings.folders.shots / "rabi5" / "experiment_4").glob("*.h5")
    } == {50}
    # No measure, no image (its result's memory entries will be empty).
    assert {
        atoms_measured(p)
        for p in (lab.settings.folders.shots / "pair7" / "experiment_1").glob("*.h5")
    } == {None}


def test_measured_atom_numbers_follow_the_binomial_law(lab: VirtualLab, tmp_path: Path) -> None:
    atoms, theta, shots = 100, 1.2, 100
    lab.submit(
        "stats", {"experiment_0": experiment(theta, shots, atoms=atoms, seed=2024)}, tmp_path
    )
    addresses = lab.wait_for_addresses("stats", shots)
    counts = np.array([atoms_measured(Path(a["shot"])) for a in addresses])

    def p_value(p_up: float) -> float:
        return binomial_p_value(counts, atoms, p_up)

    right = math.sin(theta / 2) ** 2
    assert p_value(right) > 1e-3, (counts.mean(), atoms * right)
    assert abs(counts.mean() - atoms * right) < 4 * math.sqrt(atoms * right * (1 - right) / shots)
    # The same test would fail for a wrong rotation (half the angle, or sin instead of sin^2):
    assert p_value(math.sin(theta / 4) ** 2) < 1e-6
    assert p_value(math.sin(theta / 2)) < 1e-6


def test_runmanager_down_then_back(lab: VirtualLab, tmp_path: Path) -> None:
    stop = lab_role(lab.root, "stop", "runmanager")
    assert stop.returncode == 0, stop.stderr
    lab.submit("waiter", {"experiment_0": experiment(0.5, 3)}, tmp_path)
    status = lab.wait_for_status(
        "waiter", lambda s: "Waiting for the machine: runmanager" in s.get("detail", "")
    )
    assert status["status"] == "QUEUED"
    assert "did not answer" in status["detail"]
    start = lab_role(lab.root, "start", "runmanager")
    assert start.returncode == 0, start.stderr
    lab.wait_for_addresses("waiter", 3, timeout_s=120)
    assert lab.status("waiter")["status"] == "RUNNING"


def test_globals_runmanager_rejects_end_the_job_with_its_message(
    lab: VirtualLab, tmp_path: Path
) -> None:
    # Misconfigure the apparatus: a second active group that defines labspool_seed again.
    script = f"""
from pathlib import Path
import runmanager
from labscript_utils.labconfig import load_appconfig, save_appconfig
from spooler.virtual.lab import LabLayout, stop_role, start_role
layout = LabLayout(Path({str(lab.root)!r}))
stop_role(layout.root, 'runmanager')
g = str(layout.globals_file)
runmanager.new_group(g, 'duplicate')
runmanager.new_global(g, 'duplicate', 'labspool_seed')
runmanager.set_value(g, 'duplicate', 'labspool_seed', 'None')
state = load_appconfig(str(layout.runmanager_ini))
state['runmanager_state']['active_groups'].append((g, 'duplicate'))
save_appconfig(str(layout.runmanager_ini), state)
start_role(layout.root, 'runmanager')
"""
    result = in_lab(lab.root, script)
    assert result.returncode == 0, result.stderr
    lab.submit("clash", {"experiment_0": experiment(0.5, 2, seed=3)}, tmp_path)
    status = lab.wait_for_status("clash", lambda s: s.get("status") == "ERROR", timeout_s=60)
    assert "Cannot set global labspool_seed, it is defined in multiple active groups" in " ".join(
        status["error_message"].split()
    )
    assert lab.addresses("clash") == []


def test_lab_down_leaves_no_process_behind(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    with virtual_lab(root) as lab:
        tree = {role: [pid, *descendants(pid)] for role, pid in lab.pids.items()}
        assert {"zlock", "runmanager", "blacs"} <= set(tree)
        assert len(tree["blacs"]) > 1, "BLACS's device workers are its children"
    everything = [pid for pids in tree.values() for pid in pids]
    assert not [pid for pid in everything if process_alive(pid)]
    assert not (root / "lab" / "processes.json").exists()
    again = cli("lab", "down", str(root))
    assert again.returncode == 0 and "stopped 0 process" in again.stdout
    assert json.loads(json.dumps(lab.pids))  # the pids were recorded
