"""``labspool prune``: what it says it did, and that afterwards every job still answers: its
status on the command line and through the gateway, its result, its ledger rows, the jobs
reprocess would take."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from result.reprocess import Reprocessor
from spooler.core.jobs import Jobs
from spooler.core.retention import Pruner
from spooler.core.settings import Settings
from spooler.core.store.shots import Ledger, ShotRow
from spooler.gateway.app import make_app
from tests.conftest import add_users
from tests.fakes import Clock
from tests.retentiontools import NOW, STATES, build, every_kind, files_under

Run = Callable[..., tuple[int, str, str]]
URL = "/api/v2/singlequdit"


@pytest.fixture
def pruned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command prunes at :data:`NOW` (its clock, injected)."""
    real = Pruner.__init__

    def at_now(self: Pruner, settings: Settings, **options: object) -> None:
        real(self, settings, now=NOW, dry_run=bool(options.get("dry_run")))

    monkeypatch.setattr(Pruner, "__init__", at_now)


def test_prune_says_what_it_removed_and_every_job_still_answers(
    run_cli: Run, tree: Settings, pruned_now: None
) -> None:
    settings = every_kind(tree)
    aged = build(settings)
    ledger_before = _ledger(settings)
    code, out, err = run_cli("--config", str(settings.path), "prune")
    assert code == 0 and err == ""
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["processed_addresses"].startswith("removed 5 files (")
    assert lines["finished_status_files"].startswith("removed 4 files (")
    assert lines["rendered_jobs"].startswith("removed 1 folder (")
    assert lines["rejected_job_files"].startswith("removed 2 files (")
    assert lines["quarantine"].startswith("removed 3 items (")
    assert "of jobs ended 30 days ago or more" in lines["quarantine"]
    assert lines["store"].startswith("statistics refreshed, write-ahead log checkpointed: ")
    assert not any(p.exists() for p in aged.removed) and all(p.exists() for p in aged.kept)

    # the command line: each job's document, rendered from the store
    for job_id, state in STATES.items():
        code, out, _ = run_cli("--config", str(settings.path), "status", job_id, "--json")
        document = json.loads(out)
        assert code == 0 and document["job_id"] == job_id and document["status"] == state.value
        assert document["history"], "its history is the store's"

    # the gateway: the status of every job, the result of the old DONE one, the error of
    # the old ERROR one
    tokens = add_users(settings, {"root": {"operator": True}})
    auth = {"username": "root", "token": tokens["root"]}
    with TestClient(make_app(settings, clock=Clock())) as client:
        for job_id, state in STATES.items():
            answer = client.get(f"{URL}/get_job_status", params={"job_id": job_id, **auth})
            assert answer.status_code == 200 and answer.json()["status"] == state.value
        result = client.get(f"{URL}/get_job_result", params={"job_id": "old_done", **auth})
        assert result.status_code == 200
        assert result.json() == {
            "backend_name": "singlequdit",
            "job_id": "old_done",
            "results": [],
            "status": "finished",
        }
        error = client.get(f"{URL}/get_job_result", params={"job_id": "old_error", **auth})
        assert error.json()["status"] == "error" and error.json()["error_message"] == "lost"

    # the record: every ledger row, and reprocess finds every finished job's archived shots
    assert _ledger(settings) == ledger_before
    reprocessor = Reprocessor(settings)
    try:
        assert set(reprocessor.job_ids(every=True)) == set(STATES) - {"old_rejected"}
        assert reprocessor.job_ids(["old_done"]) == ["old_done"]
    finally:
        reprocessor.close()
    archived = [r for r in ledger_before["old_done"] if r.state == "archived" and r.sds_path]
    assert len(archived) == 3 and all(Path(r.sds_path or "").is_file() for r in archived)


def test_a_dry_run_in_json_says_what_would_go_and_changes_nothing(
    run_cli: Run, tree: Settings, pruned_now: None
) -> None:
    settings = every_kind(tree)
    build(settings)
    before = files_under(settings.path.parent)
    code, out, _ = run_cli("--config", str(settings.path), "prune", "--dry-run", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["dry_run"] is True and report["store"] is None
    assert {k: v["removed"] for k, v in report["kinds"].items()} == {
        "processed_addresses": 5,
        "finished_status_files": 4,
        "rendered_jobs": 1,
        "rejected_job_files": 2,
        "quarantine": 3,
    }
    assert report["kinds"]["quarantine"]["days"] == 30
    assert report["kinds"]["quarantine"]["ended_before"].startswith("2026-12-")
    assert files_under(settings.path.parent) == before
    code, out, _ = run_cli("--config", str(settings.path), "prune", "--dry-run")
    assert code == 0 and "would remove 5 files" in out and "untouched (dry run)" in out


def test_the_default_keeps_the_status_files_and_says_so(run_cli: Run, tree: Settings) -> None:
    code, out, _ = run_cli("--config", str(tree.path), "prune")
    assert code == 0
    assert (
        "finished_status_files  kept for ever (retention.finished_status_files_days: null)" in out
    )
    assert "processed_addresses    removed 0 files (0 bytes)" in out


def test_prune_json_is_json_alone_on_stdout(tree: Settings) -> None:
    Jobs(tree.folders).close()  # the store made, as by the daemons' first start
    done = subprocess.run(
        [sys.executable, "-m", "spooler.cli", "--config", str(tree.path), "prune", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["store"]["log_truncated"] is True


def _ledger(settings: Settings) -> dict[str, list[ShotRow]]:
    jobs = Jobs(settings.folders)
    try:
        return {j: Ledger.of_job(jobs.read, j, 1) + Ledger.of_job(jobs.read, j, 2) for j in STATES}
    finally:
        jobs.close()


def test_a_file_that_cannot_be_removed_is_said_on_stderr_with_exit_code_1(
    run_cli: Run, tree: Settings, pruned_now: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = every_kind(tree)
    build(settings)
    refused = settings.folders.status / "old_done.json"
    real_unlink = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path == refused:
            raise PermissionError(13, "Permission denied")
        real_unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    code, out, err = run_cli("--config", str(settings.path), "prune")
    assert code == 1
    assert err == f"labspool prune: {refused}: Permission denied\n"
    assert "removed 3 files" in out and "; 1 could not be removed" in out
