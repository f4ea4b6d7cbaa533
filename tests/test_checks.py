from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from spooler.checks import PreRunChecks
from spooler.settings import CheckSettings, Settings
from tests.fakes import RecordingLab


def test_all_pass_on_a_healthy_machine(tree: Settings) -> None:
    assert PreRunChecks(tree, RecordingLab()).problem() is None


def test_the_lab_is_asked_first(tree: Settings) -> None:
    lab = RecordingLab()
    lab.reachable = False
    assert PreRunChecks(tree, lab).problem() == "runmanager at localhost:42523 does not answer"


def test_a_disk_below_its_floor_is_named(tree: Settings) -> None:
    huge = CheckSettings(shots_free_min_bytes=1 << 60)
    problem = PreRunChecks(dataclasses.replace(tree, checks=huge), RecordingLab()).problem()
    assert problem is not None and problem.startswith(f"the shot folder {tree.folders.shots} has")
    assert "below the floor of" in problem
    huge = CheckSettings(store_free_min_bytes=1 << 60)
    problem = PreRunChecks(dataclasses.replace(tree, checks=huge), RecordingLab()).problem()
    assert problem is not None and problem.startswith(f"the store {tree.folders.sds} has")


def test_a_store_that_takes_no_file_is_named(tree: Settings, tmp_path: Path) -> None:
    sds = tree.folders.sds
    if subprocess.run(["chattr", "+i", str(sds)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        problem = PreRunChecks(tree, RecordingLab()).problem()
    finally:
        subprocess.run(["chattr", "-i", str(sds)], check=True)
    assert problem is not None and problem.startswith(f"the store {sds} does not take a file")
    assert list(sds.iterdir()) == []
