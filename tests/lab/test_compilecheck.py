"""``validate --compile`` with the genuine labscript compiler (needs the lab extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from spooler.core.settings import Settings
from tests.conftest import good_job

pytestmark = [
    pytest.mark.lab,
    # find_spec, not importorskip: importing labscript here would create a profile in the
    # user's home and start a zlock server, the very things the sandbox avoids.
    pytest.mark.skipif(find_spec("labscript") is None, reason="the lab extra is not installed"),
]


def _labscript_processes() -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {
        int(line.split()[0])
        for line in out.splitlines()
        if "zprocess.zlock" in line or "zprocess.zlog" in line
    }


def _validate(config: Path, job: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "spooler.cli",
            "--config",
            str(config),
            "validate",
            str(job),
            "--compile",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_compiles_a_rendered_singlequdit_job_in_a_sandbox(tree: Settings, tmp_path: Path) -> None:
    home_profile = Path(os.path.expanduser("~")) / "labscript-suite"
    existed = home_profile.exists()
    before = _labscript_processes()
    job = tmp_path / "job.json"
    job.write_text(json.dumps(good_job(experiments=3)))
    result = _validate(tree.path, job)
    assert result.returncode == 0, result.stderr
    assert "rendered and compiled" in result.stdout
    assert _labscript_processes() <= before, "the compile check left a zlock/zlog server running"
    assert home_profile.exists() == existed, "the user's labscript profile was touched"


def test_a_header_labscript_rejects_fails_with_labscripts_message(
    tree: Settings, tmp_path: Path
) -> None:
    header = tree.apparatus.header
    header.write_text(
        header.read_text().replace(
            "self._pulse(rf_amplitude, 1.0, params[0] / self.rabi_rad_per_s)",
            "rf_amplitude.constant(self.t - 1.0, 1.0)",
        )
    )
    job = tmp_path / "job.json"
    job.write_text(json.dumps(good_job()))
    result = _validate(tree.path, job)
    assert result.returncode == 1
    assert "experiment_0 does not compile" in result.stderr
    assert "LabscriptError" in result.stderr
