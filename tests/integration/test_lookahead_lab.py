"""The look-ahead on the virtual lab: jobs engaged behind the running one keep every promise.

One lab for the module, with both daemons as their own processes and the look-ahead at 2
jobs and 30 shots (wider than shipped, so that a job is seen engaged ahead for seconds, long
enough to act on it from the command line). A long job ``A`` runs; the jobs behind it are
engaged while its last shots run; what each test does to them is checked against the shots
BLACS really made (their address files, filed by the result daemon) and the ledger.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_queue_lab import at, done, job, ledger_count, shots_on_store
from tests.labtools import VirtualLab, needs_suite, virtual_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, needs_suite]

LOOK_AHEAD_JOBS, LOOK_AHEAD_SHOTS = 2, 30
LONG = 40  # shots of the job in front: 10 of them run before the next job is engaged


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualLab]:
    with virtual_lab(
        tmp_path_factory.mktemp("lookahead-lab"),
        look_ahead_jobs=LOOK_AHEAD_JOBS,
        look_ahead_shots=LOOK_AHEAD_SHOTS,
        result_daemon=True,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _resumed(lab: VirtualLab) -> Iterator[None]:
    lab.labspool("resume")
    yield
    lab.labspool("resume")


def completions(lab: VirtualLab, job_id: str, attempt: int | None = None) -> list[float]:
    """When BLACS finished each shot of the job (its address files), in order."""
    times = []
    for path in lab.settings.folders.processed.glob(f"{job_id}__*.json*"):
        record = json.loads(path.read_text())
        if record["job_id"] == job_id and attempt in (None, record["attempt"]):
            times.append(datetime.fromisoformat(record["completed_at"]).timestamp())
    return sorted(times)


def made_pairs(lab: VirtualLab, job_id: str) -> list[tuple[int, str, int]]:
    """(attempt, experiment, shot index) of every shot of the job BLACS made."""
    pairs = []
    for path in lab.settings.folders.processed.glob(f"{job_id}__*.json*"):
        record = json.loads(path.read_text())
        pairs.append((record["attempt"], record["experiment"], record["shot_index"]))
    return sorted(pairs)


def engaged_ahead(lab: VirtualLab, front: str, *behind: str) -> None:
    """Wait until every job of *behind* is engaged (RUNNING, no shot made) while *front*
    still has shots to make."""
    for name in behind:
        status = lab.wait_for_status(name, lambda s: s.get("status") == "RUNNING", 120)
        assert status["shots_made"] == 0, status
    ahead = lab.status(front)
    assert ahead["status"] == "RUNNING" and ahead["shots_made"] < LONG, ahead


def line_up(lab: VirtualLab, tmp_path: Path, jobs: dict[str, int]) -> None:
    """Submit the jobs (name: shots) while paused, so that they queue in this order."""
    lab.labspool("pause", "--reason", "lining up")
    for name, shots in jobs.items():
        lab.submit(name, job(shots), tmp_path)
        lab.wait_for_status(name, lambda s: s.get("status") == "QUEUED")
    lab.labspool("resume")


def test_the_next_jobs_are_engaged_while_the_last_shots_run(
    lab: VirtualLab, tmp_path: Path
) -> None:
    line_up(lab, tmp_path, {"first": LONG, "second": 4, "third": 4})
    docs = {n: lab.wait_for_status(n, done, 240) for n in ("first", "second", "third")}
    assert [d["status"] for d in docs.values()] == ["DONE"] * 3
    first, second, third = (completions(lab, n) for n in ("first", "second", "third"))
    assert (len(first), len(second), len(third)) == (LONG, 4, 4)
    assert first[-1] < second[0] and second[-1] < third[0], "BLACS ran them in queue order"
    # engaged while the job before made its shots, not after it was done
    assert at(docs["second"], "RUNNING") < first[-1] < at(docs["first"], "DONE")
    assert at(docs["third"], "RUNNING") < second[-1]
    within = sorted(b - a for a, b in itertools.pairwise(first))
    between = [second[0] - first[-1], third[0] - second[-1]]
    # BLACS looks at an empty queue once a second: a job engaged only after the one before
    # it was done starts a second or more after its last shot
    assert max(between) < within[len(within) // 2] + 0.5, (between, within)


def test_cancel_of_a_job_engaged_ahead_withdraws_all_its_shots(
    lab: VirtualLab, tmp_path: Path
) -> None:
    line_up(lab, tmp_path, {"front": LONG, "dropped": 5})
    engaged_ahead(lab, "front", "dropped")
    lab.labspool("cancel", "dropped")
    status = lab.wait_for_status("dropped", lambda s: "Withdrawn from the lab" in s["detail"])
    assert status["status"] == "CANCELLED"
    assert lab.wait_for_status("front", done, 240)["status"] == "DONE"
    assert len(completions(lab, "front")) == LONG
    assert completions(lab, "dropped") == [], "none of its shots ran"
    assert shots_on_store(lab, "dropped") == []


def test_move_to_the_front_takes_back_the_jobs_engaged_ahead(
    lab: VirtualLab, tmp_path: Path
) -> None:
    line_up(lab, tmp_path, {"head": LONG, "b1": 3, "b2": 3, "urgent": 3})
    engaged_ahead(lab, "head", "b1", "b2")
    assert lab.status("urgent")["status"] == "QUEUED"
    lab.labspool("move", "urgent", "--front")
    for name in ("b1", "b2"):
        status = lab.status(name)
        assert status["status"] == "QUEUED" and status["attempt"] == 2, status
    docs = {n: lab.wait_for_status(n, done, 240) for n in ("head", "urgent", "b1", "b2")}
    assert all(d["status"] == "DONE" for d in docs.values()), docs
    head, urgent, b1, b2 = (completions(lab, n) for n in ("head", "urgent", "b1", "b2"))
    assert head[-1] < urgent[0] < urgent[-1] < b1[0] < b1[-1] < b2[0], "the new order"
    for name in ("b1", "b2"):
        assert docs[name]["attempt"] == 2 and docs[name]["shots_done"] == 3
        assert made_pairs(lab, name) == [(2, "experiment_0", i) for i in range(3)], (
            "every shot exactly once, none of the first attempt"
        )
        assert "Taken back from the lab" in docs[name]["detail"]
        assert "Withdrawn from the lab" in docs[name]["detail"]
        result = json.loads((lab.settings.folders.results / f"{name}.json").read_text())
        assert len(result["results"][0]["data"]["memory"]) == 3


def test_a_pause_lets_the_engaged_jobs_finish_and_starts_nothing(
    lab: VirtualLab, tmp_path: Path
) -> None:
    line_up(lab, tmp_path, {"p1": LONG, "p2": 3, "p3": 3, "p4": 3})
    engaged_ahead(lab, "p1", "p2", "p3")
    lab.labspool("pause", "--reason", "end of the day")
    docs = {n: lab.wait_for_status(n, done, 240) for n in ("p1", "p2", "p3")}
    assert all(d["status"] == "DONE" for d in docs.values())
    held = lab.wait_for_status(
        "p4", lambda s: "Waiting: the spooler is paused" in s.get("detail", "")
    )
    assert held["status"] == "QUEUED" and completions(lab, "p4") == []
    lab.labspool("resume")
    assert lab.wait_for_status("p4", done, 120)["status"] == "DONE"


def test_abort_stops_the_running_job_and_the_jobs_engaged_ahead(
    lab: VirtualLab, tmp_path: Path
) -> None:
    line_up(lab, tmp_path, {"a1": LONG, "a2": 3, "a3": 3, "a4": 3})
    engaged_ahead(lab, "a1", "a2", "a3")
    out = lab.labspool("abort")
    assert all(f"{n}: CANCELLED" in out for n in ("a1", "a2", "a3")) and "paused" in out
    for name in ("a1", "a2", "a3"):
        status = lab.wait_for_status(name, lambda s: "Withdrawn from the lab" in s["detail"])
        assert status["status"] == "CANCELLED"
    assert lab.status("a4")["status"] == "QUEUED"
    # what BLACS had queued of them is gone: a job run now comes straight after a1's last
    lab.labspool("resume")
    assert lab.wait_for_status("a4", done, 120)["status"] == "DONE"
    assert len(completions(lab, "a1")) < LONG
    assert completions(lab, "a2") == completions(lab, "a3") == []


def test_both_daemons_killed_with_two_jobs_engaged_lose_and_repeat_nothing(
    lab: VirtualLab, tmp_path: Path
) -> None:
    line_up(lab, tmp_path, {"k1": LONG, "k2": 4, "k3": 4})
    engaged_ahead(lab, "k1", "k2", "k3")
    assert lab.spooler is not None and lab.result is not None
    for process in (lab.spooler, lab.result):
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    lab.start_result_daemon()
    lab.start_spooler()
    docs = {n: lab.wait_for_status(n, done, 240) for n in ("k1", "k2", "k3")}
    for name, shots in (("k1", LONG), ("k2", 4), ("k3", 4)):
        doc: dict[str, Any] = docs[name]
        assert doc["status"] == "DONE" and doc["attempt"] == 1, doc["detail"]
        assert doc["shots_done"] == ledger_count(lab, name, 1) == shots
        assert made_pairs(lab, name) == [(1, "experiment_0", i) for i in range(shots)], (
            "every shot exactly once"
        )
        assert len(shots_on_store(lab, name)) == shots
