from __future__ import annotations

import json

from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState
from tests.conftest import record_job


def test_status_file_has_the_ecosystem_fields_and_extras(tree: Settings) -> None:
    jobs = Jobs(tree.folders)
    try:
        with jobs.change() as tx:
            tx.add_job(
                job_id="j1",
                backend="singlequdit",
                source_name="file_j1-alice.json",
                claim_name="j1.json",
                submitter="alice",
            )
        first = json.loads((tree.folders.status / "j1.json").read_text())
        assert first["status"] == "INITIALIZING" and first["error_message"] == "None"
        with jobs.change() as tx:
            tx.transition("j1", JobState.QUEUED, note="Passed json sanity check")
            tx.set_counts("j1", experiments=2, shots_requested=8)
        doc = jobs.status_files.read("j1")
    finally:
        jobs.close()
    assert list(doc)[:4] == ["job_id", "status", "detail", "error_message"]
    assert doc["job_id"] == "j1" and doc["status"] == "QUEUED"
    assert doc["detail"] == "Got your json.; Passed json sanity check"
    assert doc["error_message"] == "None"
    assert doc["user"] == "alice" and doc["submitted_as"] == "file_j1-alice.json"
    assert doc["queue_position"] == 1 and doc["shots_requested"] == 8 and doc["experiments"] == 2
    assert [h["status"] for h in doc["history"]] == ["INITIALIZING", "QUEUED"]
    assert all(h["at"].endswith("+00:00") for h in doc["history"])
    assert not [p for p in tree.folders.status.iterdir() if p.name.endswith(".tmp")]


def test_the_last_render_shows_the_newest_state_whoever_committed(tree: Settings) -> None:
    a, b = Jobs(tree.folders), Jobs(tree.folders)  # two handles, as two daemons would have
    try:
        with a.change() as tx:
            tx.add_job(job_id="j", backend="s", source_name="j.json", claim_name="j.json")
            tx.transition("j", JobState.QUEUED)
        with b.store.transaction() as tx:  # b commits but has not rendered yet
            tx.transition("j", JobState.RUNNING)
        a.publish(["j"])  # a renders late: it must still show b's newer state
        assert a.status_files.read("j")["status"] == "RUNNING"
    finally:
        a.close()
        b.close()


def test_the_status_table_names_each_jobs_user(tree: Settings) -> None:
    from spooler.core.statusview import render, snapshot

    record_job(tree, "j1", "alice", JobState.QUEUED)
    record_job(tree, "j2", None, JobState.QUEUED)
    lines = render(snapshot(tree)).splitlines()
    assert lines[0].split()[:4] == ["POS", "JOB", "USER", "STATE"]
    assert lines[1].split()[:4] == ["1", "j1", "alice", "QUEUED"]
    assert lines[2].split()[:4] == ["2", "j2", "-", "QUEUED"]
