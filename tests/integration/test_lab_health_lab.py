"""The machine's faults on the embedded virtual lab: the genuine BLACS, its plugin's report and
recovery, a camera that fails on demand, BLACS killed and started again.

A camera that raises at the end of a shot (``labspool lab fault``) makes BLACS do what a real
device failing does: the camera's tab in 'fatal error', the shot back at the front of the
queue, the queue paused, and nothing logged about the pause. The plugin reports it (the
control channel's ``hello``) and ``labspool lab recover`` restarts the tab and lifts the
pause, after which the shots flow again.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spooler.core.health import BlacsReport
from spooler.lab.blacs import BlacsControl
from spooler.virtual.lab import process_alive
from tests.labtools import VirtualLab, cli, needs_suite, virtual_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, needs_suite]

MESSAGE = "camera overheated (injected by the test)"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualLab]:
    # multiqudit: its camera is spooler.virtual.camera's (no result daemon: look-ahead wide open)
    with virtual_lab(
        tmp_path_factory.mktemp("health") / "lab",
        backend="multiqudit",
        look_ahead_jobs=100,
        look_ahead_shots=100_000,
    ) as running:
        yield running


def job(shots: int) -> dict[str, Any]:
    return {
        "experiment_0": {
            "instructions": [
                ["load", [0], [5.0]],
                ["rlx", [0], [math.pi]],
                ["measure", [0], []],
            ],
            "num_wires": 1,
            "shots": shots,
            "wire_order": "sequential",
        }
    }


def report_when(
    lab: VirtualLab, condition: Callable[[BlacsReport], bool], timeout_s: float, what: str
) -> BlacsReport:
    blacs = BlacsControl(lab.settings.folders.control)
    deadline = time.monotonic() + timeout_s
    while True:
        report = blacs.report()
        if condition(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}: {report}")
        time.sleep(0.2)


def labspool(lab: VirtualLab, *argv: str) -> str:
    result = cli(*argv)
    assert result.returncode == 0, f"labspool {' '.join(argv)}: {result.stderr}{result.stdout}"
    return result.stdout


def blacs_log(lab: VirtualLab) -> str:
    return "".join(p.read_text(errors="replace") for p in lab.root.rglob("BLACS.log"))


def test_a_failing_camera_pauses_blacs_and_recover_lifts_the_pause(
    lab: VirtualLab, tmp_path: Path
) -> None:
    config = str(lab.config)
    healthy = report_when(lab, lambda r: True, 10, "a report")
    assert not healthy.paused and healthy.devices_in_error == () and healthy.instance
    faults = lab.root / "lab" / "faults.json"
    said = labspool(
        lab, "lab", "fault", str(lab.root), "--device", "camera", "--job", "bad",
        "--shots", "1", "--message", MESSAGE,
    )  # fmt: skip
    assert "the camera fails the next 1 shot(s) of job bad" in said
    lab.submit("bad", job(3), tmp_path)

    paused = report_when(lab, lambda r: r.paused and bool(r.devices_in_error), 120, "a pause")
    assert "paused" in paused.status.lower(), paused.status
    (camera,) = paused.devices_in_error
    assert camera.name == "camera"
    assert f"RuntimeError: {MESSAGE}" in camera.message and "<" not in camera.message
    assert len(camera.message) <= 510
    assert paused.head is not None
    assert Path(paused.head).is_relative_to(lab.settings.folders.shots / "bad"), paused.head
    assert json.loads(faults.read_text()) == {"camera": []}, "the one fault is used up"
    assert lab.addresses("bad") == [] or len(lab.addresses("bad")) < 3
    # BLACS logs nothing about the pause; the plugin does
    deadline = time.monotonic() + 10
    while "BLACS's queue is paused" not in blacs_log(lab) and time.monotonic() < deadline:
        time.sleep(0.2)
    log = blacs_log(lab)
    assert "BLACS's queue is paused (status: " in log and f"camera: RuntimeError: {MESSAGE}" in log

    said = labspool(lab, "--config", config, "lab", "recover")
    assert said == "restarted camera; the queue was paused and is running again\n", said
    healthy = BlacsControl(lab.settings.folders.control).report()
    assert not healthy.paused and healthy.devices_in_error == ()
    assert healthy.instance == paused.instance
    addresses = lab.wait_for_addresses("bad", 3, timeout_s=120)  # the failed shot ran again
    assert sorted(a["shot_index"] for a in addresses) == [0, 1, 2]
    lab.submit("after", job(2), tmp_path)
    lab.wait_for_addresses("after", 2, timeout_s=120)
    assert "BLACS's queue runs again" in blacs_log(lab)
    said = labspool(lab, "--config", config, "lab", "recover", "--json")
    assert json.loads(said)["restarted"] == [] and not json.loads(said)["unpaused"]


def test_a_killed_blacs_comes_back_as_another_instance_and_its_lost_queue_is_made_again(
    lab: VirtualLab, tmp_path: Path
) -> None:
    config = str(lab.config)
    # a queue to lose: every shot of "held" fails, and BLACS pauses with the rest queued
    labspool(lab, "lab", "fault", str(lab.root), "--job", "held", "--always")
    lab.submit("held", job(6), tmp_path)
    before = report_when(lab, lambda r: r.paused and r.queued >= 2, 120, "a paused queue")
    old_pid = json.loads((lab.root / "lab" / "processes.json").read_text())["blacs"]
    labspool(lab, "lab", "fault", str(lab.root), "--clear")

    said = labspool(lab, "lab", "restart", str(lab.root), "blacs", "--kill")
    assert said.startswith("killed blacs") and "blacs is up again" in said
    assert not process_alive(old_pid)
    new_pid = json.loads((lab.root / "lab" / "processes.json").read_text())["blacs"]
    assert new_pid != old_pid and process_alive(new_pid)
    after = BlacsControl(lab.settings.folders.control).report()
    assert after.instance != before.instance and not after.paused
    assert after.devices_in_error == ()
    # the old queue is gone; what the new BLACS may hold already is the spooler's recovery
    # (spooler.pipeline.recovery) making the lost shots again, in a folder of its own
    assert not set(after.queued_folders) & set(before.queued_folders), after
    assert all(Path(f).name.startswith("recovery-") for f in after.queued_folders), after
    addresses = lab.wait_for_addresses("held", 6, timeout_s=120)  # the camera works again
    assert sorted(a["shot_index"] for a in addresses) == list(range(6))
    said = labspool(lab, "--config", config, "lab", "recover")
    assert said == "nothing was in error; the queue was not paused\n"


def test_recover_without_blacs_says_so_at_once(tmp_path: Path) -> None:
    init = cli("init", str(tmp_path / "tree"))
    assert init.returncode == 0, init.stderr
    config = Path(init.stdout.strip().splitlines()[-1])
    result = cli("--config", str(config), "lab", "recover")
    assert result.returncode == 1, result.stderr
    assert "cannot recover the lab: no lab is configured" in result.stderr
    # a lab configured, but no BLACS with labspool's plugin answering its control folder
    # (the hello's 5 s, not the recovery's 60 s; runmanager is not asked)
    text = config.read_text().replace("  kind: none ", "  kind: runmanager ", 1)
    config.write_text(text)
    started = time.monotonic()
    result = cli("--config", str(config), "lab", "recover")
    assert result.returncode == 1, result.stderr
    assert "cannot recover the lab: BLACS did not answer within 5 s" in result.stderr
    assert time.monotonic() - started < 30
