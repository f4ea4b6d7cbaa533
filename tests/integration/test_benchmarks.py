"""The benchmarks never rot: each ``scripts/bench_*.py`` runs whole with ``--smoke``.

Each runs as its own process, as a developer runs it, with a marker in its environment
(inherited by every process it starts, even a daemon the labscript suite starts by itself),
its own temporary folder and home folder; afterwards no process carries the marker, the
temporary folder is empty, and neither that home folder nor the user's labscript profile
(which the suite finds through the password database, not ``$HOME``) got anything.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.labtools import needs_suite

REPO = Path(__file__).resolve().parents[2]
# a new benchmark gets its test here
SMOKE_TESTED = {
    "bench_dutycycle.py",
    "bench_intake.py",
    "bench_result.py",
    "bench_scaleout.py",
    "bench_web.py",
    "bench_year.py",
}
NOT_BENCHMARKS = {"bench_routines.py"}  # the analysis routines bench_scaleout.py runs


def _labscript_profile() -> dict[str, int] | None:
    """The user's own labscript profile (where the suite puts it): every path and its mtime."""
    profile = Path(f"~{getpass.getuser()}").expanduser() / "labscript-suite"
    if not profile.exists():
        return None
    return {str(p): p.lstat().st_mtime_ns for p in [profile, *profile.rglob("*")]}


def _processes_with(marker: str) -> list[str]:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            data = environ.read_bytes()
            if marker.encode() in data:
                found.append(
                    (environ.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def run_smoke(script: str, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """Run ``scripts/<script> --smoke``; its stdout and the figures it wrote (--out)."""
    home, tmp, out = tmp_path / "home", tmp_path / "tmp", tmp_path / "figures.json"
    home.mkdir()
    tmp.mkdir()
    marker = f"labspool-smoke-{uuid.uuid4().hex}"
    profile_before = _labscript_profile()
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "HOME": str(home), "TMPDIR": str(tmp), "LABSPOOL_SMOKE": marker},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert _processes_with(marker) == [], "the benchmark left processes behind"
    assert list(tmp.iterdir()) == [], "the benchmark left files in its temporary folder"
    assert list(home.iterdir()) == [], "the benchmark wrote into the home folder"
    assert _labscript_profile() == profile_before, "the benchmark touched ~/labscript-suite"
    assert "a smoke run" in run.stdout
    return run.stdout, json.loads(out.read_text())


def _positive(*values: object) -> bool:
    return all(isinstance(v, float | int) and math.isfinite(v) and v > 0 for v in values)


def test_every_benchmark_has_a_smoke_test() -> None:
    found = {p.name for p in (REPO / "scripts").glob("bench_*.py")}
    assert found - NOT_BENCHMARKS == SMOKE_TESTED


def test_the_intake_benchmark_runs_whole_with_smoke(tmp_path: Path) -> None:
    out, figures = run_smoke("bench_intake.py", tmp_path)
    burst, latency = figures["burst"], figures["latency"]
    assert burst["jobs"] == 200 and latency["jobs"] == 20
    assert _positive(
        burst["intake_jobs_per_s"],
        burst["baseline_read_parse_jobs_per_s"],
        latency["spooler"]["p99_ms"],
        latency["baseline_bare_observer"]["p99_ms"],
    )
    assert re.search(r"^burst of 200 jobs: \d+ jobs/s admitted \(baseline", out, re.M)
    assert re.search(r"^pickup latency over 20 jobs: p50 [\d.]+ ms, .* p99 [\d.]+ ms", out, re.M)
    # issue 19: a job at each machine's limits, the 1 MB job refused, a small job behind a burst
    limits = figures["at_limits"]
    assert set(limits["machines"]) == {"fermions", "multiqudit", "nali", "singlequdit"}
    for name, machine in limits["machines"].items():
        assert _positive(machine["admit_cpu_median_s"], machine["baseline_json_loads_s"])
        assert re.search(rf"^{name} job at the limits \(\d+ instructions", out, re.M)
    assert limits["refused_1mb"]["instructions"] == 15 * 3291
    assert _positive(limits["refused_1mb"]["refuse_cpu_median_s"])
    assert limits["burst"]["alice_admitted_by_then"] <= 2
    assert re.search(r"^bob's small job behind alice's 5 jobs at the limits: QUEUED", out, re.M)


@pytest.mark.lab
@needs_suite
def test_the_result_benchmark_runs_whole_with_smoke(tmp_path: Path) -> None:
    """Its shots and address files are the BLACS plugin's own, which the result daemon
    checks; every shot is analysed and archived and the job ends DONE (the benchmark asserts
    that itself), then both baselines are measured."""
    out, figures = run_smoke("bench_result.py", tmp_path)
    finishing = figures["finishing"]
    assert finishing["shots"] == 20
    for key, kind in (("throughput", "processes"), ("throughput_inline", "inline")):
        throughput = figures[key]
        assert throughput["shots"] == 10 and throughput["executor"] == kind
        assert _positive(throughput["daemon_shots_per_s"], throughput["plain_copy_shots_per_s"])
        assert re.search(rf"^10 shots of [\d.]+ MB, {kind} .*: daemon [\d.]+ shots/s", out, re.M)
    assert _positive(
        finishing["finish_from_ledger_s"], finishing["lyse_get_dataframe_from_shots_s"]
    )
    assert re.search(r"^finishing a 20-shot job: [\d.]+ s from the ledger", out, re.M)
    stages = figures["stages"]
    names = [row["stage"] for row in stages["stages"]]
    for stage in (
        "routine: its reads and sums",
        "lyse: the shot's DataFrame row read back",
        "task: fsync of the work copy",
        "place: the work copy read back, verified, renamed",
        "ledger: the pass's transaction",
    ):
        assert stage in names, f"{stage!r} was never timed: its function moved?"
    assert names[-1].startswith("other") and len(set(names)) == len(names)
    assert 0.99 < sum(row["share"] for row in stages["stages"]) < 1.01
    assert re.search(r"^where a shot's time goes, inline: [\d.]+ ms a shot", out, re.M)


@pytest.mark.lab
@needs_suite
def test_the_dutycycle_benchmark_runs_whole_with_smoke(tmp_path: Path) -> None:
    """Four fresh virtual labs (look-ahead off and the defaults, jobs of 2 shots and of 1),
    every job DONE (the benchmark checks that itself), then a turnaround job; every lab and
    daemon is stopped and the temporary folder removed (run_smoke checks)."""
    out, figures = run_smoke("bench_dutycycle.py", tmp_path)
    duty, turnaround = figures["duty_cycle"], figures["turnaround"]
    for shape, shots in (("multi_shot", 2), ("single_shot", 1)):
        for label, pipelined in (("look_ahead_off", False), ("look_ahead_default", True)):
            run = duty[shape][label]
            assert (run["jobs"], run["shots_per_job"], run["shots"]) == (2, shots, 2 * shots)
            assert (run["look_ahead_jobs"] > 0) is pipelined
            assert _positive(run["shot_median_s"], run["span_s"], run["busy_share"])
            assert _positive(run["floor_busy_share"], run["tail_max_s"])
            assert 0 < run["busy_share"] <= 1
    assert turnaround["jobs"] == 1
    assert _positive(turnaround["total_median_s"], *turnaround["stages_median_s"].values())
    assert re.search(r"^2x2 look-ahead off \(jobs 0, shots \d+\) ", out, re.M)
    assert re.search(r"^turnaround of a 1-shot job on an idle machine, median of 1: ", out, re.M)


@pytest.mark.lab
@needs_suite
def test_the_scaleout_benchmark_runs_whole_with_smoke(tmp_path: Path) -> None:
    """One archived job reprocessed with inline, worker processes and a Dask LocalCluster,
    with the burn routine and with the one that does nothing; every shot reanalysed (by at
    most two worker processes with each pool), and the job's CSV and result JSON
    byte-identical across the executors (the benchmark exits 1 otherwise); the Dask workers
    are stopped and their scratch space removed (run_smoke checks)."""
    out, figures = run_smoke("bench_scaleout.py", tmp_path)
    burn, overhead = figures["burn"], figures["overhead"]
    assert figures["differences"] == [] and burn["identical"] and overhead["identical"]
    assert burn["shots"] == 8 and overhead["shots"] == 8
    for series in (burn, overhead):
        for kind in ("inline", "processes", "dask"):
            run = series["runs"][kind]
            assert run["shots"] == 8 and run["executor"] == kind
            assert 1 <= run["worker_processes_seen"] <= (1 if kind == "inline" else 2)
            assert _positive(run["wall_s"], run["shots_per_s"], run["steady_s_per_shot"])
    assert _positive(
        *burn["speedup_over_inline"].values(), *overhead["steady_ms_per_shot"].values()
    )
    assert figures["machine"]["cpus"] >= 1
    assert re.search(r"^burn over 8 shots \(20000 steps, .*; dask\(2\) [\d.]+ shots/s", out, re.M)
    assert re.search(r"^nothing over 8 shots, .*Dask's overhead per task over processes", out, re.M)
    assert re.search(
        r"^CSV and result JSON byte-identical across inline, processes and dask", out, re.M
    )


@pytest.mark.lab
@needs_suite
def test_the_web_benchmark_runs_whole_with_smoke(tmp_path: Path) -> None:
    """The gateway as a process in front of a virtual lab with both daemons: jobs posted by
    two users (and the in-process submission baseline), then 20 clients polling their jobs'
    status once a second for 3 s beside the probe of the trivial endpoint; every answer a
    200 with a status."""
    out, figures = run_smoke("bench_web.py", tmp_path)
    post, direct = figures["post_job"], figures["submit_job_direct"]
    assert post["jobs"] == direct["jobs"] == 4
    assert _positive(post["jobs_per_s"], direct["jobs_per_s"])
    polling = figures["polling"]
    status, trivial = polling["get_job_status"], polling["trivial_backends"]
    assert status["requests"] == 60 and status["codes"] == {"200": 60}  # 20 clients, 3 s
    assert trivial["requests"] > 0 and trivial["codes"] == {"200": trivial["requests"]}
    assert _positive(status["p50_ms"], status["p99_ms"], trivial["p50_ms"], trivial["p99_ms"])
    assert _positive(*figures["ratios"].values())
    assert re.search(r"^post_job: 4 jobs by 2 users, 10 at a time: [\d.]+ jobs/s", out, re.M)
    assert re.search(r"^  get_job_status / trivial: p50 [\d.]+x, p99 [\d.]+x", out, re.M)


@pytest.mark.lab
@needs_suite
def test_the_year_benchmark_runs_whole_with_smoke(tmp_path: Path) -> None:
    """Trees of 100 and 300 finished jobs (their ledger, status, result and address files,
    a quarantine), real jobs finished by the result daemon among them; every operation
    measured on both, its ratio to the smaller tree's; the reprocess plan and sample in
    processes of their own."""
    out, figures = run_smoke("bench_year.py", tmp_path)
    assert figures["sizes"] == [100, 300]
    for size in ("100", "300"):
        tree = figures["trees"][size]
        assert tree["jobs"] == int(size) and tree["ledger_shots"] >= 10 * int(size)
    measured = figures["figures"]
    for name in (
        "admit a burst of 50 jobs, jobs/s",
        "spooler start-up, s",
        "result daemon start-up, s",
        "labspool status, s",
        "labspool status --json, s",
        "get_job_status, s",
        "page overview, operator, s",
        "page job, tenjobs, s",
        "estimates of the queue, s",
        "fair-share key of a new job, s",
        "finishing a 50-shot job, s",
        "result daemon: one shot, shots/s",
        "reprocess --all: plan's peak RSS, MB",
        "reprocess --force, the sample, shots/s",
    ):
        figure = measured[name]
        assert _positive(*figure["values"].values(), *figure["ratios"].values()), name
        assert figure["ratios"]["100"] == 1.0
    assert re.search(r"^operation +unit +100 +300 +x300$", out, re.M)
    assert re.search(r"^labspool move, s +s +\S+ +\S+ +[\d.]+$", out, re.M)
