"""Status files follow the store even when a process dies between a commit and its rendering."""

from __future__ import annotations

import pytest

from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState


def add(jobs: Jobs, job_id: str) -> None:
    with jobs.change() as tx:
        tx.add_job(job_id=job_id, backend="singlequdit", source_name=job_id, claim_name=job_id)
        tx.transition(job_id, JobState.QUEUED)


def test_a_rendering_cut_short_is_done_by_the_next_daemon(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = Jobs(tree.folders)
    add(jobs, "j1")
    assert jobs.status_files.read("j1")["status"] == "QUEUED"
    assert jobs.read.unpublished() == {"j1": 1}, "cleared by the next transaction only"

    def killed(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt("killed after the commit, before the status file")

    monkeypatch.setattr(jobs.status_files, "publish", killed)
    with pytest.raises(KeyboardInterrupt), jobs.change() as tx:
        tx.transition("j1", JobState.CANCELLED, note="cancelled")
    monkeypatch.undo()
    jobs.close()
    assert Jobs(tree.folders).status_files.read("j1")["status"] == "QUEUED", "stale"

    restarted = Jobs(tree.folders)
    assert restarted.publish_unpublished() == 1
    assert restarted.status_files.read("j1")["status"] == "CANCELLED"
    assert restarted.read.unpublished() == {}
    assert restarted.publish_unpublished() == 0


def test_a_change_after_a_rendering_stays_due(tree: Settings) -> None:
    """Another process's change committed after this one's rendering read the store keeps its
    mark when this process clears what it rendered."""
    first, second = Jobs(tree.folders), Jobs(tree.folders)
    add(first, "j1")
    add(first, "j2")  # clears j1's mark (rendered), marks j2
    assert first.read.unpublished() == {"j2": 2}
    with second.store.transaction() as tx:  # a change whose rendering is lost
        tx.note("j2", "seen by nobody yet")
        tx.mark_unpublished(["j2"])
    add(first, "j3")  # clears j2 up to the mark its rendering saw, not the later one
    assert set(first.read.unpublished()) == {"j2", "j3"}
    assert first.publish_unpublished() == 2
    assert "seen by nobody yet" in first.status_files.read("j2")["detail"]
    assert first.read.unpublished() == {}
