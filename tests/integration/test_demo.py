"""The newcomer's main job, scripts/demo.py, end to end (the virtual lab, both daemons)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from spooler.virtual.lab import process_alive
from tests.labtools import cli, needs_suite

REPO = Path(__file__).resolve().parents[2]


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("labspool_demo", REPO / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Observed(threading.Event):
    """The demo's wake-up event, which tells the test each time the demo waits on it."""

    def __init__(self, waiting: threading.Event) -> None:
        super().__init__()
        self.waiting = waiting

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def publish(path: Path, **document: object) -> None:
    """A status file as the spooler publishes it: written aside, renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)


def test_the_demo_waits_for_status_files_that_appear_or_are_replaced_while_it_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The slow case of a fresh clone: the spooler has not yet written the status file of a
    job when the demo starts waiting, and a status file is caught half written."""
    demo = load_demo()
    status = tmp_path / "status"
    status.mkdir()
    publish(status / "a.json", job_id="a", status="RUNNING", shots_done=1)
    waiting = threading.Event()
    make_wake = demo._Wake

    def observed_wake() -> Any:
        wake = make_wake()
        wake.event = _Observed(waiting)
        return wake

    monkeypatch.setattr(demo, "_Wake", observed_wake)
    monkeypatch.setattr(demo, "TIMEOUT_S", 60.0)  # a demo that never sees the end exits
    steps: list[str] = []
    over = threading.Event()

    def spooler() -> None:
        if not waiting.wait(30) or over.is_set():
            return
        waiting.clear()
        (status / "a.json").write_text('{"job_id": "a", "status": "DO')  # cut off mid-write
        publish(status / "b.json", job_id="b", status="QUEUED", shots_done=0)
        steps.append("b queued, a half written")
        if not waiting.wait(30) or over.is_set():
            return
        publish(status / "a.json", job_id="a", status="DONE", shots_done=3)
        publish(status / "b.json", job_id="b", status="ERROR", shots_done=None)
        steps.append("both final")

    thread = threading.Thread(target=spooler, daemon=True)
    thread.start()
    try:
        demo.wait_until_finished(tmp_path, ["a", "b"], 3)
    finally:
        over.set()
        waiting.set()  # a writer still waiting gives up
        thread.join(30)
    assert steps == ["b queued, a half written", "both final"]
    assert "all 2 jobs finished" in capsys.readouterr().out


def test_read_json_says_not_there_yet_for_a_missing_or_cut_off_file(tmp_path: Path) -> None:
    demo = load_demo()
    assert demo.read_json(tmp_path / "missing.json") is None
    (tmp_path / "cut.json").write_bytes(b'{"status": "D\xc3')
    assert demo.read_json(tmp_path / "cut.json") is None
    (tmp_path / "whole.json").write_text('{"status": "DONE"}')
    assert demo.read_json(tmp_path / "whole.json") == {"status": "DONE"}


@pytest.mark.lab
@pytest.mark.slow
@needs_suite
def test_the_demos_jobs_end_done_with_one_memory_entry_per_shot(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    try:
        run = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "demo.py"), str(root)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
        )
    except BaseException:  # a demo cut short by the time-out leaves its lab up: stop it
        if (root / "lab" / "processes.json").exists():
            cli("lab", "down", str(root))
        raise
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stopped = re.search(r"stopped (\d+) process\(es\): ([\d ]+)", run.stdout)
    assert stopped is not None, run.stdout[-3000:]
    pids = [int(pid) for pid in stopped.group(2).split()]
    assert len(pids) == int(stopped.group(1)) >= 3, "zlock, runmanager, BLACS and its workers"
    assert not [pid for pid in pids if process_alive(pid)], "all of them ended"
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
    picture = root / "sds" / "rabi" / "rabi.png"
    assert f"the picture of the job (the multi-shot routine): {picture}" in run.stdout
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    broken = json.loads((root / "status" / "broken.json").read_text())
    assert broken["status"] == "ERROR" and "above the maximum 6.2832" in broken["error_message"]
    assert not (root / "lab" / "processes.json").exists()
