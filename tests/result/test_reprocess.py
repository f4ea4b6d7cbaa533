"""Reprocessing's choices that need no analysis: which jobs, which shots, one at a time
(the analysis itself runs on the virtual lab: tests/result/test_results_lab.py and
tests/result/test_executors_lab.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator

import pytest

import spooler.core.store.shots as ledger_module
from result import reprocess
from result.executors import Executor, Finished
from result.reprocess import Reprocessor
from result.reprocessreport import Progress
from result.task import ShotTask
from spooler.core.errors import LabspoolError
from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store.reprocessing import Reprocessing
from spooler.core.store.shots import Ledger, ShotRow
from tests.core.test_store import plans


def job_with_shots(
    tree: Settings,
    job_id: str,
    archived_at: list[float],
    final: bool,
    *,
    state: JobState = JobState.DONE,
    routines: str = "old@000000000000",
) -> None:
    jobs = Jobs(tree.folders)
    try:
        with jobs.change() as tx:
            tx.add_job(job_id=job_id, backend="singlequdit", source_name="x", claim_name="x")
            tx.transition(job_id, JobState.QUEUED)
            tx.add_experiment(job_id, 1, "experiment_0", len(archived_at))
            tx.transition(job_id, JobState.RUNNING)
            if final:
                tx.transition(job_id, state)
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
                    routines=routines,
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


@pytest.mark.parametrize(
    ("since", "wanted"), [(None, ["old", "new", "busy"]), (1500.0, ["new", "busy"])]
)
def test_every_job_is_selected_a_window_at_a_time_through_an_index_not_a_scan(
    reprocessor: Reprocessor,
    monkeypatch: pytest.MonkeyPatch,
    since: float | None,
    wanted: list[str],
) -> None:
    """--all (or --since) on a year's store: neither every job nor every archived shot read,
    nothing sorted; the windows (of two here) go on where the last ended."""
    monkeypatch.setattr(reprocess, "WINDOW_JOBS", 2, raising=False)
    found: list[list[str]] = []
    seen = plans(
        reprocessor.jobs.store,
        lambda: found.append(reprocessor.job_ids(every=since is None, since=since)),
    )
    assert found == [wanted] and seen, "the selection asks the store"
    for plan in seen:
        assert not plan.startswith("SCAN") and "TEMP B-TREE" not in plan, plan
    assert reprocessor.selected_count(since) == len(wanted)


class Unanalysed(Executor):
    """Gives every shot back unanalysed (an error), the second shot of each job lost once
    first (submitted again); notes how many ledger rows are alive at each submission."""

    def __init__(self, alive: list[int]) -> None:
        super().__init__(3, threading.Event())
        self.alive = alive
        self.most = 0
        self.submitted: list[str] = []
        self._lost: set[str] = set()
        self._done: list[Finished] = []

    def submit(self, task: ShotTask) -> None:
        self.most = max(self.most, self.alive[0])
        self.submitted.append(task.address)
        if task.address.endswith("00001.json") and task.address not in self._lost:
            self._lost.add(task.address)
            self._done.append(Finished(task.address, retry="lost"))
        else:
            self._done.append(Finished(task.address, error="RuntimeError: not analysed here"))

    def finished(self) -> list[Finished]:
        done, self._done = self._done, []
        return done

    def in_flight(self) -> int:
        return 0


def test_a_run_holds_the_shots_of_the_jobs_in_hand_not_those_of_the_store(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 jobs of 4 shots: at most the executor's capacity (3) in flight, the shots of the job
    being read and those of the jobs in flight are held, never all 240; every shot is still
    analysed once (a lost one again), and every job is done."""
    for n in range(60):
        job_with_shots(tree, f"job{n:02d}", [float(n)] * 4, final=True, state=JobState.ERROR)
    alive = [0]

    def gone() -> None:
        alive[0] -= 1

    class Counted(ShotRow):
        def __init__(self, *fields: object) -> None:
            super().__init__(*fields)  # type: ignore[arg-type]
            alive[0] += 1
            weakref.finalize(self, gone)

    monkeypatch.setattr(ledger_module, "ShotRow", Counted)
    monkeypatch.setattr(reprocess, "WINDOW_JOBS", 7, raising=False)
    reprocessor = Reprocessor(tree)
    try:
        executor = reprocessor._executor = Unanalysed(alive)
        seen: list[Progress] = []
        report = reprocessor.run(reprocessor.job_ids(every=True), progress=seen.append)
    finally:
        reprocessor.close()
    assert executor.most <= 3 + 4 + 2, f"{executor.most} ledger rows held at once"
    every = {f"job{n:02d}__experiment_0__{i:05d}.json" for n in range(60) for i in range(4)}
    assert set(executor.submitted) == every and len(executor.submitted) == 240 + 60
    assert len(report.errors) == 240 and report.shots == 0 and report.jobs == 60
    last = seen[-1]
    assert last.ended and (last.jobs_done, last.jobs_total) == (60, 60)
    assert last.line().startswith("reprocessing: 240/240 shots (100%), 240 failed, 60/60 jobs")


def test_a_job_whose_shots_carry_the_version_is_finished_without_analysis(
    tree: Settings,
) -> None:
    """What a run killed after a job's last shot leaves: the next one records its outputs
    written (an ERROR job has none to write) without starting a worker."""
    probe = Reprocessor(tree)
    version = probe.version
    probe.close()
    job_with_shots(tree, "done", [1.0, 2.0], final=True, state=JobState.ERROR, routines=version)
    reprocessor = Reprocessor(tree)
    try:
        seen: list[Progress] = []
        report = reprocessor.run(reprocessor.selected(), total=1, progress=seen.append)
        assert report.skipped == 2 and report.shots == 0 and report.jobs == 1
        assert reprocessor._executor is None, "no worker started for nothing"
        assert Reprocessing.outputs_done(reprocessor.jobs.read, "done", 1, version) is True
        assert seen[-1].ended and seen[-1].line().startswith("reprocessing: 0/0 shots (100%)")
    finally:
        reprocessor.close()


def test_reprocess_all_says_how_many_jobs_and_how_far(tree: Settings) -> None:
    probe = Reprocessor(tree)
    version = probe.version
    probe.close()
    for job_id in ("a", "b"):
        job_with_shots(tree, job_id, [1.0], final=True, state=JobState.ERROR, routines=version)
    command = [sys.executable, "-m", "result.cli", "--config", str(tree.path), "reprocess"]
    done = subprocess.run([*command, "--all"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "reprocessing: 2 job(s) with shots archived\n" in done.stderr
    assert "reprocessing: 0/0 shots (100%), 2/2 jobs" in done.stderr
    assert "reprocessed 0 shot(s) of 2 job(s) with " in done.stdout
    assert "2 carried that version already" in done.stdout
