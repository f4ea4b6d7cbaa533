"""Crash recovery of admission: a kill at any point between its steps loses nothing."""

from __future__ import annotations

import pytest

from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job


def _spooler(settings: Settings) -> Spooler:
    return Spooler(settings)


class Crash(BaseException):
    """Stands for a kill -9: nothing after it runs, not even except-blocks for Exception."""


def _state(settings: Settings, job_id: str) -> JobState:
    jobs = Jobs(settings.folders)
    try:
        return jobs.read.require(job_id).state
    finally:
        jobs.close()


@pytest.mark.parametrize("crash_at", ["after_claim", "after_record", "after_filing"])
def test_a_crash_between_steps_is_finished_at_the_next_start(
    tree: Settings, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    drop(tree, "good.json", good_job())
    drop(tree, "bad.json", '{"experiment_0": 1}')
    spooler = _spooler(tree)
    spooler.start()
    if crash_at == "after_claim":
        monkeypatch.setattr(
            spooler.admission, "admit", lambda claimed: (_ for _ in ()).throw(Crash())
        )
    elif crash_at == "after_record":
        monkeypatch.setattr(
            spooler.admission, "_decide", lambda pending: (_ for _ in ()).throw(Crash())
        )
    else:

        def change() -> None:
            raise Crash()

        monkeypatch.setattr(spooler.jobs, "change", change)
    with pytest.raises(Crash):
        spooler.step()
    monkeypatch.undo()
    spooler.close()
    assert not any(tree.folders.dump.iterdir()), "both files were claimed before the crash"

    restarted = _spooler(tree)
    try:
        restarted.run_once()
    finally:
        restarted.close()
    assert _state(tree, "good") is JobState.QUEUED
    assert _state(tree, "bad") is JobState.ERROR
    assert (tree.folders.jobs / "good" / "job.json").exists()
    assert (tree.folders.jobs / "good" / "experiment_0.py").exists()
    assert (tree.folders.rejected / "bad.json").exists()
    assert not any(tree.folders.claimed.iterdir())
    jobs = Jobs(tree.folders)
    try:
        assert len(jobs.read.jobs()) == 2
        assert jobs.status_files.read("good")["status"] == "QUEUED"
    finally:
        jobs.close()


def test_a_second_spooler_on_the_same_tree_is_refused(tree: Settings) -> None:
    from spooler.core.errors import SpoolerBusy

    first = _spooler(tree)
    try:
        with pytest.raises(SpoolerBusy, match="another spooler"):
            _spooler(tree)
    finally:
        first.close()
