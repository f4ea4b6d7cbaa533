#!/usr/bin/env python3
"""The main job: the example jobs of config/examples through labspool and the virtual lab.

Brings up the embedded virtual lab (the genuine runmanager and BLACS, offscreen), starts the
spooler, compiles and submits the examples with one deliberately broken job, waits until
BLACS has run every shot and its plugin has written the address files, prints what happened
and shuts everything down by process id. The folder is left to inspect.

    python scripts/demo.py [DIR]      (scripts/demo installs labspool first, then runs this)
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "config" / "examples").glob("*.json"))
MARKER = ".labspool-demo"
TIMEOUT_S = 300.0


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def labspool(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "spooler.cli", *args], capture_output=True, text=True
    )
    if check and result.returncode != 0:
        sys.exit(f"labspool {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout + result.stderr


class _Wake(FileSystemEventHandler):
    def __init__(self) -> None:
        self.event = threading.Event()

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.event.set()


def wait_for_shots(addresses: Path, expected: int) -> float:
    """Wait until *expected* address files exist, woken by the folder's events."""
    wake = _Wake()
    observer = Observer()
    observer.schedule(wake, str(addresses))
    observer.start()
    start = time.monotonic()
    shown = -1
    try:
        while (done := len(list(addresses.glob("*.json")))) < expected:
            if time.monotonic() - start > TIMEOUT_S:
                sys.exit(f"only {done} of {expected} shots were run within {TIMEOUT_S:.0f} s")
            if done // 10 != shown // 10:
                print(f"   {done}/{expected} shots run", flush=True)
                shown = done
            wake.event.wait(5.0)  # woken by the next address file; 5 s in case an event is lost
            wake.event.clear()
    finally:
        observer.stop()
        observer.join()
    elapsed = time.monotonic() - start
    print(f"   {expected}/{expected} shots run in {elapsed:.1f} s", flush=True)
    return elapsed


def atoms(shot: Path) -> int | None:
    with h5py.File(shot, "r") as f:
        if "images/top/fluorescence/atoms" not in f:
            return None
        image = f["images/top/fluorescence/atoms"]
        return round(float(image[()].sum()) / float(image.attrs["signal_per_atom"]))


def main() -> int:
    logging.getLogger("watchdog").setLevel(logging.CRITICAL)  # its stop() races and logs it
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "demo").absolute()
    if root.exists():
        if not (root / MARKER).exists():
            sys.exit(f"{root} exists and was not made by this demo; choose another folder")
        labspool("lab", "down", str(root), check=False)
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).touch()

    step(f"labspool lab up {root}   (runmanager and BLACS, offscreen, on dummy devices)")
    # Until the result daemon marks jobs DONE, a job stays engaged after its shots ran: let
    # all the examples be engaged at once (the configuration's lab.max_engaged_jobs).
    engaged = str(len(EXAMPLES))
    config = (
        labspool("lab", "up", str(root), "--max-engaged-jobs", engaged).strip().splitlines()[-1]
    )
    print(f"   configuration: {config}")
    spooler = None
    try:
        for job in EXAMPLES:
            step(f"labspool validate {job.relative_to(REPO)} --compile")
            print("   " + labspool("--config", config, "validate", str(job), "--compile").strip())

        step("labspool run   (the spooler, in the background)")
        log = (root / "spooler.log").open("ab")
        spooler = subprocess.Popen(
            [sys.executable, "-m", "spooler.cli", "--config", config, "run"], stdout=log, stderr=log
        )
        log.close()
        print(f"   pid {spooler.pid}, log {root / 'spooler.log'}")

        step("labspool submit: the examples and one broken job")
        expected = 0
        for job in EXAMPLES:
            job_id = labspool("--config", config, "submit", str(job), "--id", job.stem).strip()
            shots = sum(e["shots"] for e in json.loads(job.read_text()).values())
            expected += shots
            print(f"   {job.name:<16} -> job {job_id} ({shots} shots)")
        broken = root / "broken-job.json"
        broken.write_text(
            '{"experiment_0": {"instructions": [["load",[0],[50]], ["rlx",[0],[7.1]]], '
            '"num_wires": 1, "shots": 3}}'
        )
        broken_id = labspool("--config", config, "submit", str(broken), "--id", "broken").strip()
        print(f"   rlx 7.1 (> 2 pi)  -> job {broken_id}")
        broken.unlink()

        step("waiting for BLACS to run every shot (one address file each)")
        wait_for_shots(root / "addresses", expected)

        step("labspool status")
        print(labspool("--config", config, "status").rstrip())
        print(
            "\n   broken: "
            + json.loads((root / "status" / "broken.json").read_text())["error_message"]
        )

        step("shot files and address files")
        for job in EXAMPLES:
            shots = sorted((root / "shots" / job.stem).glob("*/*.h5"))
            print(
                f"   shots/{job.stem}/: {len(shots)} shot files, e.g. {shots[0].relative_to(root)}"
            )
        first = sorted((root / "addresses").glob("*.json"))[0]
        print(f"   addresses/{first.name}:")
        print("   " + first.read_text().strip().replace("\n", "\n   "))

        step("the physics: a Rabi flop on 50 atoms (rabi.json), measured atoms per shot")
        rabi = json.loads((REPO / "config" / "examples" / "rabi.json").read_text())
        for name, body in sorted(rabi.items()):
            angle = body["instructions"][1][2][0]
            counts = [atoms(p) or 0 for p in sorted((root / "shots" / "rabi" / name).glob("*.h5"))]
            mean = sum(counts) / len(counts)
            theory = 50 * math.sin(angle / 2) ** 2
            print(f"   {name}: rlx {angle:.3f}  atoms {counts}")
            print(f"      mean {mean:.1f} atoms; the exact expectation is {theory:.1f}")
    finally:
        step("shutting down")
        if spooler is not None:
            spooler.send_signal(signal.SIGTERM)
            spooler.wait(30)
            print(f"   spooler (pid {spooler.pid}) stopped")
        print("   " + labspool("lab", "down", str(root), check=False).strip())
    print(
        f"\nJobs stay RUNNING until the result daemon (next stage) analyses their shots.\n"
        f"Everything is left in {root} to inspect."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
