"""The released qiskit-cold-atom client, unchanged, through ``labspool web`` on the virtual lab.

The client runs in its own venv (``scripts/client_venv.sh .venv/client``; CI builds it):
circuits built with qiskit-cold-atom, ``backend.run``, ``job.status()`` followed,
``job.result()`` read; a circuit out of range ends in the client's ``JobError`` carrying
labspool's message.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spooler.lab.virtual import process_alive
from tests.labtools import VirtualLab, cli, needs_suite, virtual_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.long, needs_suite]

ROOT = Path(__file__).parents[1]
CLIENT_PYTHON = ROOT / ".venv" / "client" / "bin" / "python"
needs_client = pytest.mark.skipif(
    not CLIENT_PYTHON.exists(), reason="the client's venv (scripts/client_venv.sh .venv/client)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualLab]:
    with virtual_lab(tmp_path_factory.mktemp("gateway") / "lab", result_daemon=True) as running:
        yield running


@needs_client
def test_the_released_client_runs_its_circuits_through_the_gateway(lab: VirtualLab) -> None:
    added = cli("--config", str(lab.config), "user", "add", "physicist")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    port = free_port()
    listen = ["--listen", f"127.0.0.1:{port}"]
    web = subprocess.Popen(
        [sys.executable, "-m", "spooler.cli", "--config", str(lab.config), "web", *listen],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    drain: threading.Thread | None = None
    try:
        assert web.stdout is not None
        for line in web.stdout:  # uvicorn says when it listens
            if b"Uvicorn running on" in line:
                break
        drain = threading.Thread(target=web.stdout.read, daemon=True)  # a full pipe blocks
        drain.start()
        client = str(ROOT / "tests" / "client" / "run_through_gateway.py")
        url = f"http://127.0.0.1:{port}/api/v2/singlequdit"
        run = subprocess.run(
            [str(CLIENT_PYTHON), client, url, "physicist", token],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        summary = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        web.terminate()
        web.wait(30)
        if drain is not None:
            drain.join(30)  # EOF once the gateway has ended
        if web.stdout is not None:
            web.stdout.close()
    assert summary["memory"] == [["0"] * 3, ["10"] * 3], summary
    assert summary["counts"] == [{"0": 3}, {"10": 3}]
    assert (summary["states"][-1] == "DONE" and "RUNNING" in summary["states"]) or (
        summary["states"][-1] == "DONE"
    ), summary["states"]
    assert "above the maximum 6.2832" in summary["bad"], summary["bad"]
    assert "above the maximum 6.2832" in summary["bad_message"]
    status = json.loads((lab.settings.folders.status / f"{summary['job_id']}.json").read_text())
    assert status["status"] == "DONE"
    assert not process_alive(web.pid)
