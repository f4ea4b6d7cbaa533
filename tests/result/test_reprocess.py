"""Reprocessing's choices that need no analysis: which jobs, which shots, one at a time
(the analysis itself runs on the virtual lab: tests/result/test_results_lab.py and
tests/result/test_executors_lab.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from result.reprocess import Reprocessor
from spooler.core.errors import LabspoolError
from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store.shots import Ledger


def job_with_shots(tree: Settings, job_id: str, archived_at: list[float], final: bool) -> None:
    jobs = Jobs(tree.folders)
    try:
        with jobs.change() as tx:
            tx.add_job(job_id=job_id, backend="singlequdit", source_name="x", claim_name="x")
            tx.transition(job_id, JobState.QUEUED)
            tx.add_experiment(job_id, 1, "experiment_0", len(archived_at))
            tx.transition(job_id, JobState.RUNNING)
            if final:
                tx.transition(job_id, JobState.DONE)
            for i, at in enumerate(archived_at):
                address = f"{job_id}__experiment_0__{i:05d}.json"
                Ledger.claim(
                    tx,
                    address,
                    job_id=job_id,
                    attempt=1,
                    experiment="experiment_0",
                    shot_index=i,
                    local_path=f"/shots/{job_id}/{i}.h5",
                )
                Ledger.archived(
                    tx,
                    address,
                    sds_path=f"/sds/{job_id}/{i}.h5",
                    size=1,
                    sha256="0" * 64,
                    frame=b"",
                    memory="1",
                    error=None,
                    routines="old@000000000000",
                )
                tx.execute("UPDATE shots SET archived_at = ? WHERE address = ?", (at, address))
    finally:
        jobs.close()


@pytest.fixture
def reprocessor(tree: Settings) -> Iterator[Reprocessor]:
    job_with_shots(tree, "old", [1000.0, 1001.0], final=True)
    job_with_shots(tree, "new", [2000.0], final=True)
    job_with_shots(tree, "busy", [2500.0], final=False)
    r = Reprocessor(tree)
    yield r
    r.close()


def test_the_jobs_are_those_named_every_one_or_those_archived_since(
    reprocessor: Reprocessor,
) -> None:
    assert reprocessor.job_ids(["new", "old"]) == ["new", "old"]
    with pytest.raises(LabspoolError, match="no job nosuch"):
        reprocessor.job_ids(["nosuch"])
    assert reprocessor.job_ids(every=True) == ["old", "new", "busy"]
    assert reprocessor.job_ids(since=1001.0) == ["old", "new", "busy"]
    assert reprocessor.job_ids(since=1500.0) == ["new", "busy"]


def test_a_running_job_is_skipped_and_nothing_is_started(reprocessor: Reprocessor) -> None:
    report = reprocessor.run(["busy"])
    assert report.jobs_skipped == ["busy"] and report.shots == 0 and not report.errors
    assert reprocessor._executor is None, "no worker started for nothing"


def test_the_version_of_the_routines_names_each_with_its_source_digest(
    reprocessor: Reprocessor,
) -> None:
    spec, _, digest = reprocessor.version.partition("@")
    assert spec == "result.routines.singlequdit:count_atoms" and len(digest) == 12


def test_one_reprocess_at_a_time(tree: Settings, reprocessor: Reprocessor) -> None:
    with pytest.raises(LabspoolError, match="another reprocess"):
        Reprocessor(tree)


def test_the_command_line_wants_jobs_or_all_or_since(tree: Settings) -> None:
    def reprocess(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "result.cli", "--config", str(tree.path), "reprocess"]
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)

    nothing = reprocess()
    assert nothing.returncode == 2
    assert "name the jobs, or give --all or --since DATE" in nothing.stderr
    since = reprocess("--since", "yesterday")
    assert since.returncode == 2 and "not a date: 'yesterday'" in since.stderr
