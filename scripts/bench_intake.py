#!/usr/bin/env python3
"""Benchmark of the spooler's intake, with baselines measured in the same run.

1. Burst: N typical client jobs are renamed into the dump folder at once; the spooler admits
   them all (run_once). Baseline: the same files only read and parsed with json.loads.
2. Pickup latency: with the spooler running (inotify), one job at a time is renamed into the
   dump folder; latency is the time until its status file says QUEUED, seen through an
   inotify watch on the status folder. Baseline: the same rename seen by a bare watchdog
   observer on a folder (the floor of event delivery on this machine).

Figures are printed and written as JSON (--out). The machine is noisy: read the ratios.
``--smoke`` runs the whole benchmark at a size that takes seconds (to check that it runs,
not to measure).

    python scripts/bench_intake.py [--jobs 10000] [--latency-jobs 300] [--out FILE]
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

from spooler.cli import main as labspool
from spooler.daemon import Spooler
from spooler.settings import Settings, load_settings

FULL = {"jobs": 10_000, "latency_jobs": 300}
SMOKE = {"jobs": 200, "latency_jobs": 20}


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


def new_tree(root: Path) -> Settings:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        labspool(["init", str(root)])
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, help=f"default {FULL['jobs']}")
    parser.add_argument("--latency-jobs", type=int, help=f"default {FULL['latency_jobs']}")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parse_sized(parser, FULL, SMOKE)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="labspool-bench-") as tmp:
        root = Path(tmp)
        results = {
            "burst": burst(root, args.jobs, rng),
            "latency": latency(root, args.latency_jobs, rng),
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
    return finish(args, results)


if __name__ == "__main__":
    sys.exit(main())
