from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from spooler.core.settings import CheckSettings, Settings
from spooler.pipeline.checks import PreRunChecks


def first_problem(settings: Settings) -> str | None:
    """The first failing check's message (the monitor keeps each, by component)."""
    problems = PreRunChecks(settings).folder_problems()
    return problems[0][1] if problems else None


def test_all_pass_on_a_healthy_machine(tree: Settings) -> None:
    assert first_problem(tree) is None


def test_a_disk_below_its_floor_is_named(tree: Settings) -> None:
    huge = CheckSettings(shots_free_min_bytes=1 << 60)
    problem = first_problem(dataclasses.replace(tree, checks=huge))
    assert problem is not None and problem.startswith(f"the shot folder {tree.folders.shots} has")
    assert "below the floor of" in problem
    huge = CheckSettings(store_free_min_bytes=1 << 60)
    problem = first_problem(dataclasses.replace(tree, checks=huge))
    assert problem is not None and problem.startswith(f"the store {tree.folders.sds} has")


def test_a_store_that_takes_no_file_is_named(tree: Settings, tmp_path: Path) -> None:
    sds = tree.folders.sds
    if subprocess.run(["chattr", "+i", str(sds)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        problem = first_problem(tree)
    finally:
        subprocess.run(["chattr", "-i", str(sds)], check=True)
    assert problem is not None and problem.startswith(f"the store {sds} does not take a file")
    assert list(sds.iterdir()) == []
