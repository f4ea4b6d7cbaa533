#!/usr/bin/env python3
"""Benchmark of the spooler's intake, with baselines measured in the same run.

1. Burst: N typical client jobs are renamed into the dump folder at once; the spooler admits
   them all (run_once). Baseline: the same files only read and parsed with json.loads.
2. Pickup latency: with the spooler running (inotify), one job at a time is renamed into the
   dump folder; latency is the time until its status file says QUEUED, seen through an
   inotify watch on the status folder. Baseline: the same rename seen by a bare watchdog
   observer on a folder (the floor of event delivery on this machine).
3. At the limits (issue 19): per machine, the spooler's CPU time to admit a job of the most
   experiments, each of the most instructions (of the machine's widest gate), and to refuse
   the 1 MB job of the issue (15 experiments of 3,291 instructions); then one user's burst
   of five jobs at the limits with another user's small job behind it: the time until the
   small one is QUEUED. Baseline: json.loads of the same file.

Figures are printed and written as JSON (--out). The machine is noisy: read the ratios.
``--smoke`` runs the whole benchmark at a size that takes seconds (to check that it runs,
not to measure).

    python scripts/bench_intake.py [--jobs 10000] [--latency-jobs 300] [--limit-runs 10]
                                   [--out FILE]
    python scripts/bench_intake.py --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchkit import finish, parse_sized
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from spooler.cli.main import main as labspool
from spooler.core.backends import BACKENDS, Backend, Gate
from spooler.core.settings import Settings, load_settings
from spooler.core.states import JobState
from spooler.pipeline.daemon import Spooler

FULL = {"jobs": 10_000, "latency_jobs": 300, "limit_runs": 10}
SMOKE = {"jobs": 200, "latency_jobs": 20, "limit_runs": 2}


def typical_job(rng: random.Random) -> dict[str, Any]:
    """What the qiskit-cold-atom client sends for the singlequdit machine: a short sweep."""
    atoms = rng.choice([20.0, 50.0, 100.0])
    experiments = {}
    for i in range(rng.randint(1, 3)):
        instructions = [["load", [0], [atoms]]]
        instructions += [
            [rng.choice(["rlx", "rlz"]), [0], [rng.uniform(0, 6.28)]]
            for _ in range(rng.randint(1, 3))
        ]
        instructions.append(["measure", [0], []])
        experiments[f"experiment_{i}"] = {
            "instructions": instructions,
            "num_wires": 1,
            "shots": rng.choice([10, 50, 100]),
            "wire_order": "sequential",
            "seed": rng.randint(0, 10_000),
        }
    return experiments


def new_tree(root: Path, backend: str = "singlequdit") -> Settings:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        labspool(["init", str(root), "--backend", backend])
    return load_settings(out.getvalue().strip())


def drop_all(settings: Settings, jobs: list[bytes]) -> None:
    for i, data in enumerate(jobs):
        staged = settings.folders.staging / f"bench{i:06d}.json"
        staged.write_bytes(data)
        os.rename(staged, settings.folders.dump / staged.name)


def burst(root: Path, n: int, rng: random.Random) -> dict[str, float]:
    jobs = [json.dumps(typical_job(rng)).encode() for _ in range(n)]
    settings = new_tree(root / "burst")
    drop_all(settings, jobs)
    # Baseline: the same files only read and parsed.
    files = sorted(settings.folders.dump.iterdir())
    start = time.perf_counter()
    for path in files:
        json.loads(path.read_bytes())
    baseline_s = time.perf_counter() - start
    spooler = Spooler(settings)
    try:
        start = time.perf_counter()
        report = spooler.run_once()
        intake_s = time.perf_counter() - start
    finally:
        spooler.close()
    assert report.admitted == n, report.admitted
    return {
        "jobs": n,
        "intake_s": intake_s,
        "intake_jobs_per_s": n / intake_s,
        "baseline_read_parse_jobs_per_s": n / baseline_s,
        "intake_over_baseline": (n / intake_s) / (n / baseline_s),
    }


class _Seen(FileSystemEventHandler):
    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.events: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def expect(self, name: str) -> threading.Event:
        with self.lock:
            event = self.events[name] = threading.Event()
        return event

    def on_any_event(self, event: FileSystemEvent) -> None:
        now = time.perf_counter()
        if event.event_type not in ("moved", "created"):
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        name = os.path.basename(os.fsdecode(path))
        with self.lock:
            waiting = self.events.get(name)
        if waiting is not None and not waiting.is_set():
            self.times[name] = now
            waiting.set()


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "max_ms": ordered[-1],
        "mean_ms": statistics.fmean(ordered),
    }


def latency(root: Path, n: int, rng: random.Random) -> dict[str, Any]:
    settings = new_tree(root / "latency")
    data = [json.dumps(typical_job(rng)).encode() for _ in range(n)]
    # Baseline: a bare observer seeing the same renames into a watched folder.
    bare = root / "bare"
    bare.mkdir()
    seen = _Seen()
    observer = Observer()
    observer.schedule(seen, str(bare))
    observer.start()
    floor = []
    try:
        for i, payload in enumerate(data):
            name = f"b{i:05d}.json"
            staged = settings.folders.staging / name
            staged.write_bytes(payload)
            done = seen.expect(name)
            start = time.perf_counter()
            os.rename(staged, bare / name)
            assert done.wait(10)
            floor.append((seen.times[name] - start) * 1e3)
    finally:
        observer.stop()
        observer.join()
    # The spooler, watched through its status folder.
    spooler = Spooler(settings)
    ready = threading.Event()
    thread = threading.Thread(target=spooler.run, kwargs={"on_ready": ready.set}, daemon=True)
    thread.start()
    assert ready.wait(30)
    seen = _Seen()
    observer = Observer()
    observer.schedule(seen, str(settings.folders.status))
    observer.start()
    samples = []
    try:
        for i, payload in enumerate(data):
            job_id = f"lat{i:05d}"
            staged = settings.folders.staging / f"{job_id}.json"
            staged.write_bytes(payload)
            done = seen.expect(f"{job_id}.json")
            start = time.perf_counter()
            os.rename(staged, settings.folders.dump / f"{job_id}.json")
            assert done.wait(10), job_id
            while (
                json.loads((settings.folders.status / f"{job_id}.json").read_text())["status"]
                != "QUEUED"
            ):
                done = seen.expect(f"{job_id}.json")  # an earlier state was published first
                assert done.wait(10), job_id
            samples.append((seen.times[f"{job_id}.json"] - start) * 1e3)
    finally:
        observer.stop()
        observer.join()
        spooler.request_stop()
        thread.join(30)
        spooler.close()
    spooled, bare_floor = _percentiles(samples), _percentiles(floor)
    return {
        "jobs": n,
        "spooler": spooled,
        "baseline_bare_observer": bare_floor,
        "p99_over_baseline_p99": spooled["p99_ms"] / bare_floor["p99_ms"],
    }


def _widest_gate(backend: Backend) -> tuple[Gate, list[int]]:
    """The gate whose instruction costs most to check and render, on its first wires: the
    most wires, then the most parameters (not ``load`` and ``measure``: once per wire)."""
    usable = {
        g.name: (g, list(g.coupling_map[0]))
        for g in backend.gates.values()
        if g.coupling_map and g.name not in ("load", "measure")
    }
    return max(usable.values(), key=lambda u: (len(u[1]), len(u[0].params), u[0].name))


def at_limit_job(backend: Backend) -> bytes:
    """The most experiments, each of the most instructions of the widest gate, with
    parameters that differ from one instruction to the next, with all their digits."""
    gate, wires = _widest_gate(backend)
    golden = 0.6180339887498949

    def params(k: int) -> list[float | int]:
        values = [p.minimum + (p.maximum - p.minimum) * (k * golden % 1) for p in gate.params]
        return [round(v) if p.integral else v for v, p in zip(values, gate.params, strict=True)]

    return json.dumps(
        {
            f"experiment_{i}": {
                "instructions": [
                    [gate.name, wires, params(i * backend.max_instructions + k)]
                    for k in range(backend.max_instructions)
                ],
                "num_wires": backend.num_wires,
                "shots": 1,
                "wire_order": backend.default_wire_order,
            }
            for i in range(backend.max_experiments)
        }
    ).encode()


def _admit_cpu_s(spooler: Spooler, settings: Settings, name: str, data: bytes) -> float:
    """Drop one file, claim it, and measure the CPU time of admitting it."""
    staged = settings.folders.staging / name
    staged.write_bytes(data)
    os.rename(staged, settings.folders.dump / name)
    spooler.dump.rescan()
    claimed = [c for c in map(spooler.dump.claim, spooler.dump.take(1)) if c is not None]
    start = time.process_time()
    spooler.admission.admit(claimed)
    return time.process_time() - start


def _admissions(
    settings: Settings, data: bytes, runs: int, prefix: str, ending: JobState
) -> list[float]:
    """The spooler's CPU time admitting *data* *runs* times; each must end *ending*."""
    spooler = Spooler(settings)
    try:
        spooler.start()
        samples = [_admit_cpu_s(spooler, settings, f"{prefix}{i}.json", data) for i in range(runs)]
        states = {r.state for r in spooler.jobs.read.jobs()}
    finally:
        spooler.close()
    assert states == {ending}, states
    return samples


def at_limits(root: Path, runs: int) -> dict[str, Any]:
    machines: dict[str, Any] = {}
    for name, backend in sorted(BACKENDS.items()):
        settings = new_tree(root / f"limit-{name}", name)
        data = at_limit_job(backend)
        start = time.process_time()
        for _ in range(runs):
            json.loads(data)
        baseline_s = (time.process_time() - start) / runs
        samples = _admissions(settings, data, runs, "at", JobState.QUEUED)
        machines[name] = {
            "bytes": len(data),
            "instructions": backend.max_experiments * backend.max_instructions,
            "max_instructions": backend.max_instructions,
            "admit_cpu_median_s": statistics.median(samples),
            "admit_cpu_max_s": max(samples),
            "baseline_json_loads_s": baseline_s,
        }
    # the issue's job: 15 experiments of 3,291 instructions, 1 MB, refused for its size
    settings = new_tree(root / "limit-refused")
    single = BACKENDS["singlequdit"]
    issue_job = json.dumps(
        {
            f"experiment_{i}": {
                "instructions": [
                    ["rlx", [0], [round(0.1 + k % 600 / 100, 3)]] for k in range(3291)
                ],
                "num_wires": 1,
                "shots": 100,
            }
            for i in range(15)
        },
        separators=(",", ":"),
    ).encode()
    refused = _admissions(settings, issue_job, runs, "big", JobState.ERROR)
    return {
        "machines": machines,
        "refused_1mb": {
            "bytes": len(issue_job),
            "instructions": 15 * 3291,
            "limit": single.max_instructions,
            "refuse_cpu_median_s": statistics.median(refused),
        },
        "burst": burst_behind(root / "limit-burst"),
    }


def burst_behind(root: Path) -> dict[str, Any]:
    """Five jobs at the limits from alice, then bob's small one: passes of the spooler until
    bob's is QUEUED (in one process, no watcher: the passes alone)."""
    settings = new_tree(root)
    big = at_limit_job(BACKENDS["singlequdit"])
    small = json.dumps(typical_job(random.Random(0))).encode()
    names = [f"file_a{i}-alice.json" for i in range(5)] + ["file_b0-bob.json"]
    spooler = Spooler(settings)
    try:
        spooler.start()
        for name in names:
            staged = settings.folders.staging / name
            staged.write_bytes(small if "bob" in name else big)
            os.rename(staged, settings.folders.dump / name)
        spooler.dump.rescan()
        start, cpu, passes = time.perf_counter(), time.process_time(), 0
        while True:
            spooler.step()
            passes += 1
            record = spooler.jobs.read.get("b0")
            if record is not None and record.state is JobState.QUEUED:
                break
        wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        alice_before = sum(spooler.jobs.read.get(f"a{i}") is not None for i in range(5))
    finally:
        spooler.close()
    return {
        "alice_jobs": 5,
        "alice_job_bytes": len(big),
        "bob_queued_after_s": wall_s,
        "bob_queued_after_cpu_s": cpu_s,
        "passes": passes,
        "alice_admitted_by_then": alice_before,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, help=f"default {FULL['jobs']}")
    parser.add_argument("--latency-jobs", type=int, help=f"default {FULL['latency_jobs']}")
    parser.add_argument("--limit-runs", type=int, help=f"default {FULL['limit_runs']}")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parse_sized(parser, FULL, SMOKE)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="labspool-bench-") as tmp:
        root = Path(tmp)
        results = {
            "burst": burst(root, args.jobs, rng),
            "latency": latency(root, args.latency_jobs, rng),
            "at_limits": at_limits(root, args.limit_runs),
        }
    b, lat = results["burst"], results["latency"]
    print(
        f"burst of {b['jobs']} jobs: {b['intake_jobs_per_s']:.0f} jobs/s admitted "
        f"(baseline read+parse {b['baseline_read_parse_jobs_per_s']:.0f} jobs/s; "
        f"ratio {b['intake_over_baseline']:.3f})"
    )
    s, f = lat["spooler"], lat["baseline_bare_observer"]
    print(
        f"pickup latency over {lat['jobs']} jobs: p50 {s['p50_ms']:.2f} ms, "
        f"p95 {s['p95_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, max {s['max_ms']:.2f} ms "
        f"(bare observer p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms)"
    )
    limits = results["at_limits"]
    for name, m in limits["machines"].items():
        print(
            f"{name} job at the limits ({m['instructions']} instructions, {m['bytes']} bytes): "
            f"admitted in {m['admit_cpu_median_s'] * 1e3:.1f} ms of CPU (median; max "
            f"{m['admit_cpu_max_s'] * 1e3:.1f} ms; json.loads "
            f"{m['baseline_json_loads_s'] * 1e3:.1f} ms)"
        )
    r, bb = limits["refused_1mb"], limits["burst"]
    print(
        f"the issue's 1 MB job ({r['instructions']} instructions): refused in "
        f"{r['refuse_cpu_median_s'] * 1e3:.1f} ms of CPU (median)"
    )
    print(
        f"bob's small job behind alice's 5 jobs at the limits: QUEUED after "
        f"{bb['bob_queued_after_s']:.3f} s ({bb['passes']} passes, "
        f"{bb['alice_admitted_by_then']} of alice's admitted by then)"
    )
    return finish(args, results)


if __name__ == "__main__":
    sys.exit(main())
