"""No single item stops a daemon: the death counter, the quarantine folder, and the spooler's
items (job files, jobs to engage, lab actions) given up instead of stopping it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from spooler.core.errors import describe_exception
from spooler.core.items import DeathCounter, Quarantine
from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.watching import WatchingDaemon
from spooler.lab import Withdrawal
from spooler.pipeline.control import QueueControl
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job
from tests.core.test_watching import Counting
from tests.fakes import Clock, RecordingLab

ROOT = Path(__file__).resolve().parents[2]


def test_deaths_are_the_starts_that_did_not_end(tree: Settings) -> None:
    jobs = Jobs(tree.folders)
    try:
        counter = DeathCounter(jobs.store, "spooler", deaths_max=2)
        other = DeathCounter(jobs.store, "result", deaths_max=2)
        assert counter.deaths(jobs.read, "job file", "a") == 0
        counter.started("job file", "a")
        counter.started("job file", "a")
        assert counter.deaths(jobs.read, "job file", "a") == 2
        assert counter.poisoned(jobs.read, "job file", "a") == 2
        assert other.deaths(jobs.read, "job file", "a") == 0  # per daemon
        counter.ended("job file", "a")
        assert counter.poisoned(jobs.read, "job file", "a") is None
    finally:
        jobs.close()


def test_a_reboot_is_not_a_death(tree: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import spooler.core.items

    jobs = Jobs(tree.folders)
    try:
        counter = DeathCounter(jobs.store, "result", deaths_max=2)
        counter.started("shot", "a")
        counter.started("shot", "a")
        assert counter.poisoned(jobs.read, "shot", "a") == 2
        monkeypatch.setattr(spooler.core.items, "boot_id", lambda: "after-a-power-cut")
        assert counter.deaths(jobs.read, "shot", "a") == 0
        counter.started("shot", "a")  # counting starts again in this boot
        assert counter.deaths(jobs.read, "shot", "a") == 1
    finally:
        jobs.close()


def test_quarantine_keeps_everything_and_replaces_nothing(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path / "quarantine", "result daemon", clock=lambda: 1.7e9)
    first, second = tmp_path / "x.json", tmp_path / "y" / "x.json"
    second.parent.mkdir()
    first.write_text("one")
    second.write_text("two")
    outside = tmp_path / "outside"
    outside.write_text("secret")
    link = tmp_path / "link.json"
    link.symlink_to(outside)
    quarantine.put(first, "bad one", job_id="j")
    quarantine.put(second, "bad two")
    quarantine.put(link, "a link")
    folder = tmp_path / "quarantine"
    assert (folder / "x.json").read_text() == "one"
    assert (folder / "x.json.1").read_text() == "two"
    assert (folder / "link.json").is_symlink() and outside.read_text() == "secret"
    reasons = {r["reason"]: r for r in quarantine.reasons()}
    assert set(reasons) == {"bad one", "bad two", "a link"}
    assert reasons["bad one"]["job_id"] == "j" and reasons["bad one"]["item"] == "x.json"
    assert not first.exists() and not second.exists() and not link.exists()


def test_describe_exception_is_one_printable_line() -> None:
    text = describe_exception(ValueError("bad\nvalue \udcff " + "x" * 1000))
    assert text.startswith("ValueError: bad value \\xff ")
    assert text.isprintable() and len(text) < 600


_DRIVER = """
import os, sys
from spooler.pipeline.validation import JobValidator

checked = JobValidator.validate_bytes

def validate_bytes(self, data):
    if b"poison" in data:
        os._exit(7)  # a library that ends the process on this input
    return checked(self, data)

JobValidator.validate_bytes = validate_bytes
from spooler.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_job_file_that_kills_the_spooler_is_given_up_after_n_deaths(tree: Settings) -> None:
    """The death counter at work on a real spooler process: the batch dies, then each of its
    jobs is tried alone; the one that kills the process ends ERROR after 3 deaths."""
    poison = good_job()
    poison["experiment_0"]["wire_order"] = "poison"
    drop(tree, "a.json", good_job())
    drop(tree, "p.json", poison)
    drop(tree, "z.json", good_job())
    command = [sys.executable, "-c", _DRIVER, "--config", str(tree.path), "run", "--once"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    codes = []
    for _ in range(6):
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        codes.append(run.returncode)
        if run.returncode == 0:
            break
    assert codes == [7, 7, 7, 0], codes  # the batch, alone, alone, then given up
    jobs = Jobs(tree.folders)
    try:
        states = {r.job_id: r for r in jobs.read.jobs()}
    finally:
        jobs.close()
    assert states["a"].state is JobState.QUEUED and states["z"].state is JobState.QUEUED
    assert states["p"].state is JobState.ERROR
    assert "the spooler died 3 times while checking this job file" in str(states["p"].error_message)
    assert (tree.folders.rejected / "p.json").exists()
    status = json.loads((tree.folders.status / "p.json").read_text())
    assert status["status"] == "ERROR" and "died 3 times" in status["error_message"]


class _BrokenLab(RecordingLab):
    def set_globals(self, values: Mapping[str, object]) -> None:
        raise RuntimeError("a bug in the lab driver")


def test_an_unexpected_error_while_engaging_ends_that_job_not_the_spooler(
    tree: Settings, clock: Clock
) -> None:
    lab = _BrokenLab()
    spooler = Spooler(tree, lab=lab, clock=clock, wall_clock=lambda: 1.7e9 + clock.now)
    try:
        drop(tree, "a.json", good_job())
        drop(tree, "b.json", good_job())
        spooler.run_once()
        spooler.step()
        a, b = spooler.jobs.read.require("a"), spooler.jobs.read.require("b")
    finally:
        spooler.close()
    assert a.state is JobState.ERROR and b.state is JobState.ERROR  # each given up in turn
    assert a.error_message == (
        "internal error while engaging the job: RuntimeError: a bug in the lab driver"
    )


class _WithdrawBug(RecordingLab):
    def withdraw(self, folders: Sequence[Path], *, abort: bool) -> Withdrawal:
        raise KeyError("surprise")


def test_an_unexpected_error_in_a_lab_action_gives_up_the_action(
    tree: Settings, clock: Clock
) -> None:
    lab = _WithdrawBug()
    spooler = Spooler(tree, lab=lab, clock=clock, wall_clock=lambda: 1.7e9 + clock.now)
    try:
        drop(tree, "a.json", good_job())
        spooler.run_once()
        assert spooler.jobs.read.require("a").state is JobState.RUNNING
        QueueControl(spooler.jobs, "tester@host").cancel("a")
        spooler.step()
        spooler.step()  # not tried again
        record = spooler.jobs.read.require("a")
    finally:
        spooler.close()
    assert record.lab_action is None and record.state is JobState.CANCELLED
    assert sum("Internal error while withdrawing" in n for n in record.notes) == 1


class _FailingOnce(Counting):
    name = "failing daemon"
    lock = "failing.lock"

    def _pass(self, look: bool) -> bool:
        if self.passes == 0:
            self.passes += 1
            raise OSError(28, "No space left on device")
        return super()._pass(look)


def test_a_failing_pass_is_retried_and_the_loop_goes_on(
    tree: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spooler.core.watching

    monkeypatch.setattr(spooler.core.watching, "PASS_RETRY_S", 0.05)
    daemon = _FailingOnce(tree)
    assert isinstance(daemon, WatchingDaemon)
    ready = threading.Event()
    thread = threading.Thread(target=daemon.run, kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(30)
        drop(tree, "a.json", good_job())
        assert daemon.claimed_one.wait(30), "the loop went on after the failed pass"
    finally:
        daemon.request_stop()
        thread.join(30)
        daemon.close()
    assert not thread.is_alive()
    assert "a pass failed" in caplog.text and "No space left on device" in caplog.text
