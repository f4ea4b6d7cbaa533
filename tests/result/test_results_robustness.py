"""The result daemon under kill -9 and with the store made unwritable mid-run (virtual lab)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.labtools import VirtualLab, needs_suite, virtual_lab, wait_until
from tests.virtual.test_virtual_lab import experiment

pytestmark = [pytest.mark.lab, pytest.mark.slow, needs_suite]


def shots_announced(lab: VirtualLab) -> int:
    """Address files BLACS's plugin has written so far, wherever the daemon has put them."""
    folders = lab.settings.folders
    return sum(
        len(list(folder.glob("*.json")))
        for folder in (folders.addresses, folders.processed, folders.state / "result-claimed")
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ledger(lab: VirtualLab) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(f"file:{lab.settings.folders.database}?mode=ro", uri=True) as db:
        return {
            Path(p).name: (state, sha)
            for p, state, sha in db.execute(
                "SELECT sds_path, state, sha256 FROM shots WHERE sds_path IS NOT NULL"
            )
        }


def assert_every_shot_once_on_the_store(lab: VirtualLab, job_id: str, total: int) -> None:
    store = lab.settings.folders.sds / job_id
    on_store = sorted(store.glob("*/*.h5"))
    assert len(on_store) == len({p.name for p in on_store}) == total
    recorded = ledger(lab)
    for shot in on_store:
        state, sha = recorded[shot.name]
        assert state == "archived" and hashlib.sha256(shot.read_bytes()).hexdigest() == sha
    leftovers = list(lab.settings.folders.sds.rglob(".*.tmp")) + list(
        (lab.settings.folders.state / "result-work").iterdir()
    )
    assert not leftovers, leftovers
    assert not list(lab.settings.folders.shots.glob(f"{job_id}/*/*.h5")), "a local copy was left"


def test_kill_minus_nine_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    experiments, per_experiment = 4, 50
    total = experiments * per_experiment
    rng = random.Random(20261122)
    with virtual_lab(tmp_path / "lab", look_ahead_jobs=0) as lab:
        lab.submit(
            "crash",
            {
                f"experiment_{i}": experiment(1.0 + i / 2, per_experiment, seed=i)
                for i in range(experiments)
            },
            tmp_path,
        )
        kills = 0
        while kills < 20 or shots_announced(lab) < total:
            daemon = lab.start_result_daemon(wait=False)  # killed at any moment, start-up too
            time.sleep(rng.uniform(0.5, 2.5))  # a random moment: there is no event to wait for
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            lab.result = None
            kills += 1
            assert kills < 200, "BLACS stopped producing shots"
        lab.start_result_daemon()
        status = lab.wait_for_status("crash", lambda s: s.get("status") in ("DONE", "ERROR"), 300)
        assert status["status"] == "DONE", status
        result = json.loads((lab.settings.folders.results / "crash.json").read_text())
        assert [len(r["data"]["memory"]) for r in result["results"]] == [
            per_experiment
        ] * experiments
        assert all(m.isdigit() for r in result["results"] for m in r["data"]["memory"])
        assert_every_shot_once_on_the_store(lab, "crash", total)
        assert kills >= 20


def _immutable(path: Path, on: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chattr", "-R", "+i" if on else "-i", str(path)], capture_output=True, text=True
    )


def test_an_unwritable_store_is_waited_for_and_nothing_is_lost(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    if _immutable(probe, True).returncode != 0:
        pytest.skip(
            "chattr +i is not permitted here (it is how the test makes the store unwritable)"
        )
    _immutable(probe, False)
    with virtual_lab(tmp_path / "lab", look_ahead_jobs=0, result_daemon=True) as lab:
        store = lab.settings.folders.sds
        lab.submit("outage", {"experiment_0": experiment(1.0, 30, seed=3)}, tmp_path)
        wait_until(
            store,
            lambda: len(list(store.glob("outage/*/*.h5"))) >= 3,
            120,
            "the first shots on the store",
        )
        assert _immutable(store, True).returncode == 0  # read-only for everyone, root included
        try:
            log = lab.root / "result.log"
            wait_until(
                lab.root,
                lambda: "waiting for the store" in log.read_text(),
                120,
                "the daemon to notice the store",
            )
            wait_until(
                lab.settings.folders.processed,
                lambda: shots_announced(lab) >= 30,
                120,
                "every shot to be made",
            )
            assert lab.status("outage")["status"] == "RUNNING"
            waiting = list(lab.settings.folders.shots.glob("outage/*/*.h5"))
            assert waiting, "shots wait locally while the store is away"
            assert lab.result is not None
            before = cpu_seconds(lab.result.pid)
            time.sleep(3.0)  # a window to measure: waiting must not burn the CPU
            assert cpu_seconds(lab.result.pid) - before < 1.0
        finally:
            _immutable(store, False)
        status = lab.wait_for_status("outage", lambda s: s.get("status") in ("DONE", "ERROR"), 180)
        assert status["status"] == "DONE", status
        assert_every_shot_once_on_the_store(lab, "outage", 30)


def test_a_routine_that_raises_ends_the_job_error_and_the_shot_is_still_archived(
    tmp_path: Path,
) -> None:
    def add_failing_routine(config: Path) -> None:
        text = config.read_text()
        shipped = "    - result.routines.singlequdit:count_atoms\n"
        assert shipped in text
        config.write_text(
            text.replace(shipped, shipped + "    - tests.result.routines_for_tests:explode\n")
        )

    with virtual_lab(
        tmp_path / "lab", look_ahead_jobs=0, result_daemon=True, prepare=add_failing_routine
    ) as lab:
        lab.submit("broken", {"experiment_0": experiment(1.0, 2, seed=1)}, tmp_path)
        status = lab.wait_for_status("broken", lambda s: s.get("status") == "ERROR", 120)
        assert "tests.result.routines_for_tests:explode failed" in status["error_message"]
        assert "RuntimeError: the camera saw nothing" in status["error_message"]
        store = lab.settings.folders.sds / "broken" / "experiment_0"
        wait_until(
            lab.settings.folders.shots,
            lambda: (
                len(list(store.glob("*.h5"))) == 2
                and not list(lab.settings.folders.shots.glob("broken/*/*.h5"))
            ),
            120,
            "both shots archived",
        )
        assert not (lab.settings.folders.results / "broken.json").exists()
