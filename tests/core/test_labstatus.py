"""``labspool lab status`` and the status view's machine line: the machine's health as the
spooler recorded it in the job store (records written here directly, as the monitor does)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime

from spooler.core.health import STALE_AFTER_S, Reason
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.statusview import machine_line, snapshot
from spooler.core.timestamps import iso_time
from tests.conftest import record_health, record_job

Cli = Callable[..., tuple[int, str, str]]
KEYS = [
    "backend_name",
    "operational",
    "status_msg",
    "reasons",
    "since",
    "last_check",
    "pending_jobs",
]


def _iso(timestamp: float) -> str:
    text = iso_time(timestamp)
    assert text is not None
    return text


def test_no_store_says_so_exits_3_and_creates_nothing(tree: Settings, run_cli: Cli) -> None:
    config = str(tree.path)
    code, out, _ = run_cli("--config", config, "lab", "status")
    assert code == 3 and "no job store yet" in out
    code, out, _ = run_cli("--config", config, "lab", "status", "--json")
    document = json.loads(out)
    assert code == 3 and list(document) == KEYS
    assert document["operational"] is False and "no job store yet" in document["status_msg"]
    assert document["pending_jobs"] == 0 and document["reasons"] == []
    assert not tree.folders.database.exists(), "lab status never creates the store"
    view = snapshot(tree)
    assert view.health is None
    assert machine_line(view.health, view.now, width=200).startswith("machine: no job store")


def test_operational_exits_0_and_counts_the_waiting_jobs(tree: Settings, run_cli: Cli) -> None:
    now = time.time()
    record_job(tree, "q", "alice", JobState.QUEUED)
    record_job(tree, "r", "alice", JobState.QUEUED, JobState.RUNNING)
    record_job(tree, "d", "bob", JobState.QUEUED, JobState.RUNNING, JobState.DONE)
    record_job(tree, "i", "bob")  # INITIALIZING: not yet waiting for the machine
    record_health(tree, True, [], since=now - 3600, at=now - 5)
    code, out, _ = run_cli("--config", str(tree.path), "lab", "status")
    lines = out.splitlines()
    assert code == 0, out
    assert lines[0] == "operational"
    assert lines[1].startswith("last check: ") and lines[1].endswith(("(5 s ago)", "(6 s ago)"))
    assert lines[2] == "pending jobs: 2"
    code, out, _ = run_cli("--config", str(tree.path), "lab", "status", "--json")
    document = json.loads(out)
    assert code == 0 and list(document) == KEYS
    assert document == {
        "backend_name": tree.gateway.backend_name,
        "operational": True,
        "status_msg": "operational",
        "reasons": [],
        "since": _iso(now - 3600),
        "last_check": _iso(now - 5),
        "pending_jobs": 2,
    }
    view = snapshot(tree)
    assert machine_line(view.health, view.now) == "machine: operational"


def test_not_operational_names_each_reason_and_exits_3(tree: Settings, run_cli: Cli) -> None:
    now = time.time()
    reasons = [
        Reason("blacs", "the queue is paused", now - 600),
        Reason("device:ni_card", "DAQmx error -200279 <b>", now - 300),
    ]
    record_health(tree, False, reasons, since=now - 600, at=now - 2)
    code, out, _ = run_cli("--config", str(tree.path), "lab", "status")
    lines = out.splitlines()
    assert code == 3
    assert lines[0].startswith("NOT OPERATIONAL since ") and lines[0].endswith("(10 min)")
    clock = datetime.fromtimestamp(now - 600).strftime("%H:%M:%S")
    assert clock in lines[0] or datetime.fromtimestamp(now - 600).date() != datetime.now().date()
    assert lines[1].startswith("  blacs: the queue is paused (since ")
    assert lines[2].startswith("  device:ni_card: DAQmx error -200279 <b> (since ")
    assert lines[3].startswith("last check: ") and lines[4] == "pending jobs: 0"
    code, out, _ = run_cli("--config", str(tree.path), "lab", "status", "--json")
    document = json.loads(out)
    assert code == 3 and list(document) == KEYS and document["operational"] is False
    assert document["reasons"] == [
        {"component": "blacs", "message": "the queue is paused", "since": _iso(now - 600)},
        {
            "component": "device:ni_card",
            "message": "DAQmx error -200279 <b>",
            "since": _iso(now - 300),
        },
    ]
    assert document["since"] == _iso(now - 600) and document["last_check"] == _iso(now - 2)
    assert document["status_msg"] == (
        "blacs: the queue is paused; device:ni_card: DAQmx error -200279 <b>"
    )
    # the status view's header, cut to the terminal's width
    view = snapshot(tree)
    line = machine_line(view.health, view.now, width=1000)
    assert line.startswith("machine: NOT OPERATIONAL since ")
    assert line.endswith(": blacs: the queue is paused; device:ni_card: DAQmx error -200279 <b>")
    short = machine_line(view.health, view.now, width=40)
    assert len(short) == 40 and short.endswith("...")
    code, out, _ = run_cli("--config", str(tree.path), "status")
    assert code == 0 and out.splitlines()[0].startswith("machine: NOT OPERATIONAL since ")


def test_a_stale_record_is_not_operational(tree: Settings, run_cli: Cli) -> None:
    """The spooler stopped: its last word (operational) is not believed; the state is
    shown as unknown since its last check, not since it last became operational."""
    now = time.time()
    last = now - STALE_AFTER_S - 120
    record_health(tree, True, [], since=now - 86400, at=last)
    code, out, _ = run_cli("--config", str(tree.path), "lab", "status")
    lines = out.splitlines()
    assert code == 3
    assert lines[0].startswith("NOT OPERATIONAL since ") and lines[0].endswith("(3 min)")
    assert lines[1].startswith("  spooler: the machine was last looked at ")
    assert "is the spooler running?" in lines[1]
    code, out, _ = run_cli("--config", str(tree.path), "lab", "status", "--json")
    document = json.loads(out)
    assert code == 3 and document["operational"] is False
    assert document["since"] == _iso(last) == document["last_check"]
    assert [r["component"] for r in document["reasons"]] == ["spooler"]


def test_a_store_without_a_record_is_unknown(tree: Settings, run_cli: Cli) -> None:
    record_job(tree, "q", "alice", JobState.QUEUED)  # the store exists, no health row yet
    code, out, _ = run_cli("--config", str(tree.path), "lab", "status")
    assert code == 3
    assert out.splitlines()[0] == (
        "NOT OPERATIONAL: the machine has not been looked at yet (is the spooler running?)"
    )
    assert "last check: never" in out and "pending jobs: 1" in out
    code, out, _ = run_cli("--config", str(tree.path), "lab", "status", "--json")
    document = json.loads(out)
    assert code == 3 and document["since"] is None and document["last_check"] is None
