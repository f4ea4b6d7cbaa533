"""The systemd units: `systemd-analyze verify` clean, exposure at most 2.0 (offline)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spooler.cli.services import ROLES, render_unit, unit_name
from spooler.core.settings import Settings

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@pytest.fixture
def units(tree: Settings, tmp_path: Path) -> list[Path]:
    paths = []
    for role in ROLES:
        path = tmp_path / unit_name(role)
        path.write_text(
            render_unit(role, tree, bin_dir=Path(sys.executable).parent, user="labspool")
        )
        paths.append(path)
    return paths


def test_units_name_the_daemons_and_the_configuration(units: list[Path], tree: Settings) -> None:
    spooler, result, gateway = (p.read_text() for p in units)
    assert (
        f"ExecStart={Path(sys.executable).parent / 'labspool'} --config {tree.path} run" in spooler
    )
    assert (
        f"ExecStart={Path(sys.executable).parent / 'labspool-result'} --config {tree.path} run"
        in result
    )
    assert (
        f"ExecStart={Path(sys.executable).parent / 'labspool'} --config {tree.path} web" in gateway
    )
    for text in (spooler, result, gateway):
        assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
        assert f"RequiresMountsFor={tree.path.parent} {tree.folders.sds}" in text
        assert not re.search(r"@[A-Z]+@", text), "a field of the template was not filled"


def test_systemd_analyze_verify_is_silent(units: list[Path]) -> None:
    for unit in units:
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
        )
        assert result.returncode == 0 and result.stderr == "", result.stderr


def test_exposure_is_at_most_2(units: list[Path]) -> None:
    for unit in units:
        result = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", str(unit)],
            capture_output=True,
            text=True,
        )
        match = re.search(
            r"Overall exposure level for \S+: ([0-9.]+)", result.stdout + result.stderr
        )
        assert match, result.stdout[-500:] + result.stderr
        assert float(match.group(1)) <= 2.0, match.group(0)


def test_folders_outside_the_tree_are_writable(tree: Settings, tmp_path: Path) -> None:
    elsewhere = tmp_path / "data-disk" / "shots"
    moved = dataclasses.replace(tree, folders=dataclasses.replace(tree.folders, shots=elsewhere))
    unit = render_unit("spooler", moved, bin_dir=Path(sys.executable).parent, user="labspool")
    (line,) = [x for x in unit.splitlines() if x.startswith("ReadWritePaths=")]
    assert line.split()[-1] == f"-{elsewhere}"
    plain = render_unit("spooler", tree, bin_dir=Path(sys.executable).parent, user="labspool")
    (line,) = [x for x in plain.splitlines() if x.startswith("ReadWritePaths=")]
    assert line.split()[-1].endswith("labscript-suite"), "nothing extra for the default tree"
