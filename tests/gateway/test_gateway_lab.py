"""The released qiskit-cold-atom client, unchanged, through ``labspool web`` on the virtual lab.

The client runs in its own venv (``scripts/client_venv.sh .venv/client``; CI builds it):
circuits built with qiskit-cold-atom, ``backend.run``, ``job.status()`` followed,
``job.result()`` read; a circuit out of range ends in the client's ``JobError`` carrying
labspool's message.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import good_job
from tests.labtools import VirtualLab, cli, needs_suite, virtual_lab
from tests.webtools import Chromium, gateway, needs_chromium

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.long, needs_suite]

ROOT = Path(__file__).parents[2]
CLIENT_PYTHON = ROOT / ".venv" / "client" / "bin" / "python"
needs_client = pytest.mark.skipif(
    not CLIENT_PYTHON.exists(), reason="the client's venv (scripts/client_venv.sh .venv/client)"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualLab]:
    with virtual_lab(tmp_path_factory.mktemp("gateway") / "lab", result_daemon=True) as running:
        yield running


@needs_client
def test_the_released_client_runs_its_circuits_through_the_gateway(lab: VirtualLab) -> None:
    added = cli("--config", str(lab.config), "user", "add", "physicist")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    with gateway(lab.config) as base:
        client = str(ROOT / "tests" / "client" / "run_through_gateway.py")
        run = subprocess.run(
            [str(CLIENT_PYTHON), client, f"{base}/api/v2/singlequdit", "physicist", token],
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["memory"] == [["0"] * 3, ["10"] * 3], summary
    assert summary["counts"] == [{"0": 3}, {"10": 3}]
    assert (summary["states"][-1] == "DONE" and "RUNNING" in summary["states"]) or (
        summary["states"][-1] == "DONE"
    ), summary["states"]
    assert "above the maximum 6.2832" in summary["bad"], summary["bad"]
    assert "above the maximum 6.2832" in summary["bad_message"]
    status = json.loads((lab.settings.folders.status / f"{summary['job_id']}.json").read_text())
    assert status["status"] == "DONE"


@needs_chromium
def test_the_live_page_follows_a_job_the_lab_runs(lab: VirtualLab, tmp_path: Path) -> None:
    added = cli("--config", str(lab.config), "user", "add", "ops", "--operator")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    lab.labspool("pause", "--reason", "the page's test")
    with gateway(lab.config) as base, Chromium(tmp_path / "chromium") as browser:
        body = {"job": json.dumps(good_job(shots=30, experiments=2)), "username": "ops"}
        posted = post_json(f"{base}/api/v2/singlequdit/post_job", {**body, "token": token})
        job_id = posted["job_id"]
        row = f"tr[data-job='{job_id}']"
        browser.open(f"{base}/#user=ops&token={token}")
        browser.wait_for(f"document.querySelector(\"{row}\")?.dataset.status == 'QUEUED'", "QUEUED")
        assert "the page's test" in browser.text("#pause")
        assert browser.text(f"{row} .position") == "1" and browser.text(f"{row} .user") == "ops"
        lab.labspool("resume")
        browser.wait_for(
            f"document.querySelector(\"{row}\").dataset.status == 'RUNNING'", "RUNNING", 120
        )
        assert browser.evaluate("document.getElementById('pause').hidden")
        shots = browser.text(f"{row} .shots")
        assert shots.endswith("/60") and int(shots.split("/")[0]) < 60, shots
        browser.screenshot(tmp_path / "running.png")
        browser.wait_for(f"document.querySelector(\"{row}\").dataset.status == 'DONE'", "DONE", 180)
        assert browser.text(f"{row} .shots") == "60/60"
        browser.open(f"{base}/jobs/{job_id}")
        browser.wait_for("document.getElementById('job-picture').naturalWidth > 0", "its picture")
        experiments = browser.evaluate(
            "[...document.querySelectorAll('#job-result-table tr[data-experiment]')].length"
        )
        assert experiments == 2
        assert browser.errors == []
        browser.screenshot(tmp_path / "done.png")
    assert lab.status(job_id)["status"] == "DONE" and lab.status(job_id)["user"] == "ops"


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.loads(answer.read()))
