"""The systemd units: `systemd-analyze verify` clean, exposure at most 2.0 (offline)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spooler.cli.services import (
    DAEMONS,
    ROLES,
    TIMERS,
    render_timer,
    render_unit,
    timer_name,
    unit_name,
)
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
    for role in TIMERS:
        path = tmp_path / timer_name(role)
        path.write_text(render_timer(role, tree))
        paths.append(path)
    return paths


def test_units_name_the_daemons_and_the_configuration(units: list[Path], tree: Settings) -> None:
    spooler, result, gateway = (p.read_text() for p in units[:3])
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
        assert "WantedBy=multi-user.target" in text


def test_prune_runs_once_a_day_from_its_timer(units: list[Path], tree: Settings) -> None:
    *_, prune, timer = (p.read_text() for p in units)
    assert (
        f"ExecStart={Path(sys.executable).parent / 'labspool'} --config {tree.path} prune" in prune
    )
    assert "Type=oneshot" in prune and "Nice=10" in prune
    for daemon_only in ("Type=notify", "WatchdogSec=", "Restart=", "[Install]"):
        assert daemon_only not in prune, daemon_only
    assert f"RequiresMountsFor={tree.path.parent} {tree.folders.sds}" in prune
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer
    assert f"Unit={unit_name('prune')}" in timer and "WantedBy=timers.target" in timer
    assert str(tree.path) in timer and not re.search(r"@[A-Z]+@", timer)
    assert set(ROLES) == set(DAEMONS) | set(TIMERS)
    with pytest.raises(ValueError):
        render_timer("spooler", tree)


def test_systemd_analyze_verify_is_silent(units: list[Path]) -> None:
    for unit in units:
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
        )
        assert result.returncode == 0 and result.stderr == "", result.stderr


def test_exposure_is_at_most_2(units: list[Path]) -> None:
    for unit in (u for u in units if u.suffix == ".service"):
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
