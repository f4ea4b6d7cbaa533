"""The newcomer's main job, scripts/demo.py, end to end (the virtual lab, both daemons)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.labtools import needs_suite

pytestmark = [pytest.mark.lab, pytest.mark.slow, needs_suite]

REPO = Path(__file__).resolve().parent.parent


def test_the_demos_jobs_end_done_with_one_memory_entry_per_shot(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "stopped 8 process(es)" in run.stdout
    for example in sorted((REPO / "config" / "examples").glob("*.json")):
        job = json.loads(example.read_text())
        status = json.loads((root / "status" / f"{example.stem}.json").read_text())
        assert status["status"] == "DONE", status
        result = json.loads((root / "results" / f"{example.stem}.json").read_text())
        assert result["status"] == "finished"
        for entry in result["results"]:
            made = list((root / "sds" / example.stem / entry["header"]["name"]).glob("*.h5"))
            assert (
                len(entry["data"]["memory"]) == len(made) == job[entry["header"]["name"]]["shots"]
            )
    broken = json.loads((root / "status" / "broken.json").read_text())
    assert broken["status"] == "ERROR" and "above the maximum 6.2832" in broken["error_message"]
    assert not (root / "lab" / "processes.json").exists()
