#!/usr/bin/env python3
"""Benchmark of reprocessing on each executor: inline, worker processes, a Dask cluster.

One job of N small shots (0.05 MB: the work is the routine's, not the disk's) is archived
by the result daemon (``inline``) and ends ``DONE``. Then ``labspool-result reprocess``'s
:class:`result.reprocess.Reprocessor` analyses its archived shots again, ``force``, with
each executor in turn:

- ``inline``: in this process, one shot at a time (the baseline);
- ``processes``: a pool of W spawned worker processes (default 2);
- ``dask``: a Dask ``LocalCluster`` of W worker processes with one thread each.

1. Scale-out: the routines ``count_atoms`` and ``bench_routines:burn``, a CPU-bound
   routine (a fixed number of steps of a pure-Python generator, about 0.15 s a shot on an
   idle core; see ``scripts/bench_routines.py``). Shots/s of each executor and the
   speed-up over inline, both over the whole run (wall clock, the executor's start-up and
   the job's CSV and result JSON rewritten included) and in the steady state (from the
   first shot finished to the last). The job's CSV and result JSON after each run must be
   byte-identical across the three executors; the benchmark exits 1 if they are not.
   Goal: at least 1.8x over inline with 2 workers on 2 cores.
2. Overhead: the same three runs with ``count_atoms`` and ``bench_routines:nothing``
   (a routine that does nothing): the steady-state time per shot of each executor, and
   Dask's overhead per task, its time per shot less that of the worker processes.

Also reported: the machine's CPUs (this process's affinity) and its load average before
and after, since other processes' load skews every figure here.

Runs in a throw-away labscript profile with a zlock server of its own (stopped by pid);
every temporary file (Dask's too) is under one temporary folder, removed at the end.
``--smoke`` runs the whole benchmark at a size that takes seconds (to check that it runs,
not to measure).

    python scripts/bench_scaleout.py [--shots 200] [--workers 2] [--burn-iterations N] [--out F]
    python scripts/bench_scaleout.py --smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import bench_routines
from bench_result import make_shots, running_job
from benchkit import finish, labscript_sandbox, parse_sized

from spooler.core.scaffold import write_tree
from spooler.core.settings import ExecutorSettings, Settings, load_settings

FULL = {"shots": 200, "burn_iterations": bench_routines.ITERATIONS}
SMOKE = {"shots": 8, "burn_iterations": 20_000}

SCRIPTS = Path(__file__).resolve().parent
JOB = "scaleout"
SHOT_MB = 0.05
COUNT = "result.routines.singlequdit:count_atoms"
BURN = (COUNT, "bench_routines:burn")
NOTHING = (COUNT, "bench_routines:nothing")
KINDS = ("inline", "processes", "dask")


def executor(kind: str, workers: int) -> ExecutorSettings:
    return ExecutorSettings(kind=kind, workers=None if kind == "inline" else workers)


def with_executor(settings: Settings, chosen: ExecutorSettings) -> Settings:
    return replace(settings, result=replace(settings.result, executor=chosen))


def archived_job(root: Path, shots: int) -> Settings:
    """A tree with one DONE job of *shots* archived shots (analysed inline, count_atoms)."""
    from result.daemon import ResultDaemon

    settings = load_settings(write_tree(root / "tree", "singlequdit"))
    settings = with_executor(settings, executor("inline", 1))
    running_job(settings, JOB, shots)
    make_shots(settings, JOB, shots, SHOT_MB)
    daemon = ResultDaemon(settings)
    try:
        done = daemon.run_once()
        state = daemon.jobs.read.require(JOB).state.value
    finally:
        daemon.close()
    assert done == shots and state == "DONE", (done, state)
    return settings


def reprocess(settings: Settings, chosen: ExecutorSettings, routines: tuple[str, ...]) -> Any:
    """One forced reprocess of the job with *chosen*: its figures, the CSV and JSON bytes."""
    from result.reprocess import Reprocessor
    from result.reprocessreport import Progress

    stamps: list[float] = []

    def progress(state: Progress) -> None:  # (also called when a job is done, and at the end)
        if state.done > len(stamps):
            stamps.append(time.perf_counter())

    reprocessor = Reprocessor(with_executor(settings, chosen), routines=routines, force=True)
    try:
        start = time.perf_counter()
        report = reprocessor.run(reprocessor.job_ids([JOB]), progress=progress)
        wall_s = time.perf_counter() - start
    finally:
        closing = time.perf_counter()
        reprocessor.close()
        close_s = time.perf_counter() - closing
    shots = len(stamps)
    assert not report.errors, report.errors[:3]
    assert report.jobs_rewritten.first == [JOB], report
    assert report.shots == shots >= 2, (report.shots, shots)
    steady_s = (stamps[-1] - stamps[0]) / (shots - 1)
    figures = {
        "executor": chosen.kind,
        "workers": chosen.worker_count(),
        "worker_processes_seen": len(report.workers),
        "shots": shots,
        "wall_s": wall_s,
        "shots_per_s": shots / wall_s,
        "first_shot_after_s": stamps[0] - start,
        "steady_s_per_shot": steady_s,
        "steady_shots_per_s": 1.0 / steady_s,
        "close_s": close_s,
    }
    csv = (settings.folders.sds / JOB / "experiment_0.csv").read_bytes()
    result = (settings.folders.results / f"{JOB}.json").read_bytes()
    return figures, csv, result


def compare(name: str, outputs: dict[str, tuple[bytes, bytes]]) -> list[str]:
    """What differs between the executors' CSVs and result JSONs (empty: identical)."""
    base_kind, (base_csv, base_json) = next(iter(outputs.items()))
    differences = []
    for kind, (csv, result) in outputs.items():
        for what, mine, theirs in (("CSV", csv, base_csv), ("result JSON", result, base_json)):
            if mine != theirs:
                lines = zip(mine.splitlines(), theirs.splitlines(), strict=False)
                first = next(((i, a, b) for i, (a, b) in enumerate(lines) if a != b), None)
                where = f" (line {first[0] + 1}: {first[1]!r} vs {first[2]!r})" if first else ""
                differences.append(f"{name}: {kind}'s {what} differs from {base_kind}'s{where}")
    return differences


def series(
    settings: Settings, routines: tuple[str, ...], workers: int
) -> tuple[dict[str, Any], list[str]]:
    runs: dict[str, Any] = {}
    outputs: dict[str, tuple[bytes, bytes]] = {}
    for kind in KINDS:
        figures, csv, result = reprocess(settings, executor(kind, workers), routines)
        runs[kind], outputs[kind] = figures, (csv, result)
    differences = compare(routines[-1], outputs)
    if routines == BURN and b"burned" not in outputs["inline"][0]:
        differences.append("burn: the CSV has no burned column")
    return runs, differences


def burn_call_s(steps: int) -> float:
    """The burn's work alone, here (the best of three)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        bench_routines.spin(50, steps)
        best = min(best, time.perf_counter() - start)
    return best


def benchmark(root: Path, shots: int, workers: int, steps: int) -> dict[str, Any]:
    settings = archived_job(root, shots)
    load_before = os.getloadavg()
    burn, burn_differences = series(settings, BURN, workers)
    idle, idle_differences = series(settings, NOTHING, workers)
    load_after = os.getloadavg()
    ms = {kind: 1000.0 * idle[kind]["steady_s_per_shot"] for kind in KINDS}
    return {
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
        },
        "burn": {
            "shots": shots,
            "iterations": steps,
            "burn_call_s": burn_call_s(steps),
            "runs": burn,
            "speedup_over_inline": {
                kind: burn[kind]["shots_per_s"] / burn["inline"]["shots_per_s"]
                for kind in KINDS[1:]
            },
            "steady_speedup_over_inline": {
                kind: burn[kind]["steady_shots_per_s"] / burn["inline"]["steady_shots_per_s"]
                for kind in KINDS[1:]
            },
            "identical": not burn_differences,
        },
        "overhead": {
            "shots": shots,
            "runs": idle,
            "steady_ms_per_shot": ms,
            "dask_over_processes_ms_per_task": ms["dask"] - ms["processes"],
            "processes_over_inline_ms": ms["processes"] - ms["inline"],
            "dask_over_inline_ms": ms["dask"] - ms["inline"],
            "identical": not idle_differences,
        },
        "differences": burn_differences + idle_differences,
    }


def report(results: dict[str, Any], workers: int) -> None:
    m, b, o = results["machine"], results["burn"], results["overhead"]
    print(
        f"machine: {m['cpus']} CPUs; load average (1 min) {m['load_average_before'][0]:.2f} "
        f"before the runs, {m['load_average_after'][0]:.2f} after"
    )
    label = {"inline": "inline", "processes": f"processes({workers})", "dask": f"dask({workers})"}
    parts = []
    for kind in KINDS:
        run = b["runs"][kind]
        speedup = (
            ""
            if kind == "inline"
            else f" = {b['speedup_over_inline'][kind]:.2f}x, steady "
            f"{b['steady_speedup_over_inline'][kind]:.2f}x"
        )
        parts.append(
            f"{label[kind]} {run['shots_per_s']:.2f} shots/s "
            f"(steady {run['steady_shots_per_s']:.2f}, first shot after "
            f"{run['first_shot_after_s']:.2f} s){speedup}"
        )
    print(
        f"burn over {b['shots']} shots ({b['iterations']} steps, {b['burn_call_s']:.3f} s a "
        f"call here): " + "; ".join(parts)
    )
    print(
        f"nothing over {o['shots']} shots, steady ms per shot: "
        + ", ".join(f"{label[k]} {o['steady_ms_per_shot'][k]:.1f}" for k in KINDS)
        + f"; Dask's overhead per task over processes {o['dask_over_processes_ms_per_task']:+.1f}"
        f" ms; over inline: processes {o['processes_over_inline_ms']:+.1f} ms, "
        f"dask {o['dask_over_inline_ms']:+.1f} ms"
    )
    if results["differences"]:
        print("RESULTS DIFFER BETWEEN EXECUTORS:", file=sys.stderr)
        for line in results["differences"]:
            print(f"  {line}", file=sys.stderr)
    else:
        print("CSV and result JSON byte-identical across inline, processes and dask (both series)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shots", type=int, help=f"default {FULL['shots']}")
    parser.add_argument(
        "--burn-iterations",
        type=int,
        help=f"burn's steps a shot; default {FULL['burn_iterations']}",
    )
    parser.add_argument("--workers", type=int, default=2, help="of processes and dask; default 2")
    parser.add_argument("--out", type=Path)
    args = parse_sized(parser, FULL, SMOKE)
    if args.shots < 2:
        parser.error("--shots: at least 2")
    with tempfile.TemporaryDirectory(prefix="labspool-bench-scaleout-") as tmp:
        root = Path(tmp)
        # every temporary file of this process and its children (Dask's scratch space, the
        # worker processes') under root
        (root / "tmp").mkdir()
        saved_tempdir, tempfile.tempdir = tempfile.tempdir, str(root / "tmp")
        saved_env = {name: os.environ.get(name) for name in ("TMPDIR", "PYTHONPATH")}
        os.environ["TMPDIR"] = str(root / "tmp")
        os.environ[bench_routines.ENV_VAR] = str(args.burn_iterations)
        try:
            # the workers (spawned, or spawned by Dask's nannies) import bench_routines
            paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            os.environ["PYTHONPATH"] = os.pathsep.join([*paths, str(SCRIPTS)])
            with labscript_sandbox(root):
                results = benchmark(root, args.shots, args.workers, args.burn_iterations)
        finally:
            tempfile.tempdir = saved_tempdir
            os.environ.pop(bench_routines.ENV_VAR, None)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    report(results, args.workers)
    code = finish(args, results)
    return 1 if results["differences"] else code


if __name__ == "__main__":
    sys.exit(main())
