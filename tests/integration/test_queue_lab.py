"""Queue control with both daemons running against the virtual lab (one lab for the module).

Every command goes through the `labspool` command line, as an operator would give it,
while the spooler and the result daemon run as their own processes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.labtools import VirtualLab, needs_suite, virtual_lab, wait_until
from tests.virtual.test_virtual_lab import experiment

pytestmark = [pytest.mark.lab, needs_suite]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualLab]:
    with virtual_lab(tmp_path_factory.mktemp("queue-lab"), result_daemon=True) as running:
        yield running


@pytest.fixture(autouse=True)
def _resumed(lab: VirtualLab) -> None:
    lab.labspool("resume")


def job(shots: int, experiments: int = 1) -> dict[str, Any]:
    return {f"experiment_{n}": experiment(3.1416, shots) for n in range(experiments)}


def at(doc: dict[str, Any], status: str, attempt: int = 1) -> float:
    """When the job entered *status* (in *attempt*)."""
    times = [h["at"] for h in doc["history"] if h["status"] == status and h["attempt"] == attempt]
    assert times, f"{doc['job_id']} never was {status} in attempt {attempt}"
    return datetime.fromisoformat(times[0]).timestamp()


def done(doc: dict[str, Any]) -> bool:
    return doc.get("status") in ("DONE", "ERROR", "CANCELLED")


def shots_on_store(lab: VirtualLab, job_id: str) -> list[Path]:
    return sorted((lab.settings.folders.sds / job_id).rglob("*.h5"))


def ledger_count(lab: VirtualLab, job_id: str, attempt: int) -> int:
    with sqlite3.connect(f"file:{lab.settings.folders.database}?mode=ro", uri=True) as db:
        (n,) = db.execute(
            "SELECT COUNT(*) FROM shots WHERE job_id = ? AND attempt = ? AND state = 'archived'",
            (job_id, attempt),
        ).fetchone()
    return int(n)


def cancel_while_running(
    lab: VirtualLab, job_id: str, *, shots: int, after: int, tmp_path: Path
) -> dict[str, Any]:
    """Submit a job, cancel it once *after* shots are done; its status once withdrawn."""
    lab.submit(job_id, job(shots), tmp_path)
    lab.wait_for_status(job_id, lambda s: s.get("shots_done", 0) >= after, 180)
    lab.labspool("cancel", job_id)
    return lab.wait_for_status(job_id, lambda s: "Withdrawn from the lab" in s["detail"])


def test_moves_change_the_order_the_jobs_run_in(lab: VirtualLab, tmp_path: Path) -> None:
    lab.labspool("pause", "--reason", "lining up the queue")
    for name in ("o1", "o2", "o3"):
        lab.submit(name, job(2), tmp_path)
    lab.wait_for_status("o1", lambda s: "Waiting: the spooler is paused" in s.get("detail", ""))
    for name in ("o2", "o3"):
        lab.wait_for_status(name, lambda s: s.get("status") == "QUEUED")
    lab.labspool("move", "o3", "--front")
    lab.labspool("move", "o1", "--back")
    lab.labspool("move", "o2", "--before", "o3")
    positions = {n: lab.status(n)["queue_position"] for n in ("o1", "o2", "o3")}
    assert positions == {"o2": 1, "o3": 2, "o1": 3}
    assert "Moved before o3 of the queue by" in lab.status("o2")["detail"]
    lab.labspool("resume")
    docs = {n: lab.wait_for_status(n, done) for n in ("o1", "o2", "o3")}
    assert all(d["status"] == "DONE" for d in docs.values())
    assert at(docs["o2"], "RUNNING") < at(docs["o3"], "RUNNING") < at(docs["o1"], "RUNNING")


def test_a_cancelled_running_job_stops_making_shots_and_keeps_the_ones_made(
    lab: VirtualLab, tmp_path: Path
) -> None:
    status = cancel_while_running(lab, "long", shots=40, after=3, tmp_path=tmp_path)
    assert status["status"] == "CANCELLED"
    # A job behind it runs to the end; BLACS runs its queue in order, so once this is
    # DONE every shot of the cancelled job that was going to be made has been made.
    lab.submit("after", job(2), tmp_path)
    assert lab.wait_for_status("after", done, 180)["status"] == "DONE"
    status = lab.wait_for_status(
        "long", lambda s: s["shots_done"] == ledger_count(lab, "long", 1), 60
    )
    made = status["shots_done"]
    assert 3 <= made < 40, f"{made} of 40 shots made after the cancel"
    assert len(shots_on_store(lab, "long")) == made, "every shot made is archived"
    assert status["status"] == "CANCELLED"
    withdrawn = next(n for n in status["detail"].split("; ") if n.startswith("Withdrawn"))
    removed = int(withdrawn.split(": ")[1].split()[0])
    assert removed >= 1 and made + removed <= 40


def test_requeue_runs_a_cancelled_job_again_and_keeps_its_history(
    lab: VirtualLab, tmp_path: Path
) -> None:
    cancel_while_running(lab, "again", shots=20, after=1, tmp_path=tmp_path)
    out = lab.labspool("requeue", "again")
    assert "QUEUED as attempt 2" in out
    status = lab.wait_for_status("again", done, 180)
    assert status["status"] == "DONE" and status["attempt"] == 2
    states = [(h["attempt"], h["status"]) for h in status["history"]]
    assert states[:4] == [(1, "INITIALIZING"), (1, "QUEUED"), (1, "RUNNING"), (1, "CANCELLED")]
    assert states[4:] == [(2, "QUEUED"), (2, "RUNNING"), (2, "DONE")]
    assert status["shots_done"] == ledger_count(lab, "again", 2) == 20
    result = json.loads((lab.settings.folders.results / "again.json").read_text())
    assert len(result["results"][0]["data"]["memory"]) == 20, "only attempt 2's shots count"
    second = lab.settings.folders.sds / "again" / "experiment_0"
    assert len(list(second.glob("*.h5"))) == 20 + ledger_count(lab, "again", 1)


def test_abort_stops_the_running_job_and_pauses_the_queue(lab: VirtualLab, tmp_path: Path) -> None:
    lab.submit("bad", job(40), tmp_path)
    lab.wait_for_status("bad", lambda s: s.get("shots_done", 0) >= 2, 180)
    lab.submit("next", job(2), tmp_path)
    out = lab.labspool("abort")
    assert "bad: CANCELLED" in out and "paused" in out
    status = lab.wait_for_status("bad", lambda s: "Withdrawn from the lab" in s["detail"])
    assert (
        "the running shot was aborted" in status["detail"]
        or "none of its shots was running" in status["detail"]
    )
    waiting = lab.wait_for_status(
        "next", lambda s: "Waiting: the spooler is paused" in s.get("detail", "")
    )
    assert waiting["status"] == "QUEUED"
    assert "paused by" in lab.labspool("status")
    lab.labspool("resume")
    assert lab.wait_for_status("next", done, 180)["status"] == "DONE"
    assert lab.status("bad")["shots_done"] < 40


def test_a_pause_survives_a_restart_of_the_spooler(lab: VirtualLab, tmp_path: Path) -> None:
    lab.labspool("pause", "--reason", "maintenance")
    lab.stop_spooler()
    lab.start_spooler()
    lab.submit("held", job(2), tmp_path)
    status = lab.wait_for_status(
        "held", lambda s: "Waiting: the spooler is paused" in s.get("detail", "")
    )
    assert status["status"] == "QUEUED" and status["detail"].endswith("maintenance")
    lab.labspool("resume")
    assert lab.wait_for_status("held", done, 180)["status"] == "DONE"


def engagement(lab: VirtualLab, job_id: str) -> list[tuple[str, float | None, float | None]]:
    with sqlite3.connect(f"file:{lab.settings.folders.database}?mode=ro", uri=True) as db:
        return list(
            db.execute(
                "SELECT name, submitted_at, engaged_at FROM experiments WHERE job_id = ? "
                "ORDER BY name",
                (job_id,),
            )
        )


def test_a_spooler_killed_while_a_job_is_engaged_neither_loses_nor_repeats_it(
    lab: VirtualLab, tmp_path: Path
) -> None:
    """SIGKILL as soon as an experiment is submitted but not yet confirmed engaged (when
    that moment is seen; otherwise once the job runs), then a restart."""
    lab.submit("killed", job(3, experiments=6), tmp_path)
    assert lab.spooler is not None
    caught_unconfirmed = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = engagement(lab, "killed")
        if any(s is not None and e is None for _, s, e in rows):
            caught_unconfirmed = True
            break
        if rows and all(e is not None for _, _, e in rows):
            break
        time.sleep(0.001)
    os.kill(lab.spooler.pid, signal.SIGKILL)
    lab.spooler.wait()
    lab.start_spooler()
    status = lab.wait_for_status("killed", done, 240)
    assert status["status"] == "DONE", status["detail"]
    assert status["shots_done"] == status["shots_expected"] == 18
    addresses = [
        json.loads(p.read_text()) for p in lab.settings.folders.processed.glob("killed__*.json*")
    ]
    made = sorted((a["experiment"], a["shot_index"]) for a in addresses)
    assert made == sorted((f"experiment_{e}", i) for e in range(6) for i in range(3)), (
        "every shot exactly once"
    )
    assert "Recovery after a restart" in status["detail"]
    if caught_unconfirmed:
        assert "was submitted without confirmation" in status["detail"]
    print(f"killed with an unconfirmed experiment: {caught_unconfirmed}")


def test_status_watch_draws_progress_bars(lab: VirtualLab, tmp_path: Path) -> None:
    lab.submit("watched", job(30), tmp_path)
    lab.wait_for_status("watched", lambda s: s.get("shots_done", 0) >= 1, 180)
    out = lab.labspool("status", "--watch", "--count", "2", "--interval", "0.2")
    assert out.count("labspool status") == 2
    line = next(x for x in out.splitlines() if x.startswith("RUNNING  watched"))
    assert "[" in line and "/30" in line and "elapsed" in line
    lab.labspool("cancel", "watched")
    wait_until(
        lab.settings.folders.status,
        lambda: "Withdrawn" in lab.status("watched")["detail"],
        60,
        "the withdrawal",
    )
