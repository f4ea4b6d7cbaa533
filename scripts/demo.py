#!/usr/bin/env python3
"""The main job: the example jobs of config/examples through labspool and the virtual lab.

Brings up the embedded virtual lab (the genuine runmanager and BLACS, offscreen), starts the
spooler and the result daemon, compiles and submits the examples with one deliberately broken
job, waits until every job has finished (its shots run by BLACS, analysed, archived to the
store, its result file written), prints what happened and shuts everything down by process
id. The folder is left to inspect.

    python scripts/demo.py [DIR]      (scripts/demo installs labspool first, then runs this)
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "config" / "examples").glob("*.json"))
MARKER = ".labspool-demo"
TIMEOUT_S = 300.0


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def indent(text: str) -> str:
    return "   " + text.strip().replace("\n", "\n   ")


def labspool(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "spooler.cli", *args], capture_output=True, text=True
    )
    if check and result.returncode != 0:
        sys.exit(f"labspool {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout + result.stderr


def start(root: Path, name: str, module: str, config: str) -> subprocess.Popen[bytes]:
    log = (root / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--config", config, "run"], stdout=log, stderr=log
    )
    log.close()
    print(f"   pid {process.pid}, log {root / f'{name}.log'}")
    return process


class _Wake(FileSystemEventHandler):
    def __init__(self) -> None:
        self.event = threading.Event()

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.event.set()


FINAL = ("DONE", "ERROR", "CANCELLED")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in *path*, or None while it is not there yet: not written yet, or
    caught while being replaced (labspool publishes by rename, but the demo does not rely on
    that). What the demo reads is waited for, never a traceback."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):  # ValueError: JSON or UTF-8 cut off mid-write
        return None
    return document if isinstance(document, dict) else None


def wait_until_finished(root: Path, job_ids: list[str], shots: int) -> None:
    """Wait until every job's status file exists and says DONE, ERROR or CANCELLED, woken
    by changes in the status folder. A status file that is missing (the spooler has not
    taken the job yet) or unreadable (being replaced) is "not there yet"."""
    folder = root / "status"
    wake = _Wake()
    observer = Observer()
    observer.schedule(wake, str(folder))
    observer.start()
    begun = time.monotonic()
    shown = -1
    try:
        while True:
            wake.event.clear()  # before reading: a change from here on ends the wait below
            states = {job: read_json(folder / f"{job}.json") for job in job_ids}
            seen = [s for s in states.values() if s is not None and "status" in s]
            done = sum(int(s.get("shots_done") or 0) for s in seen)
            if len(seen) == len(job_ids) and all(s["status"] in FINAL for s in seen):
                break
            if time.monotonic() - begun > TIMEOUT_S:
                missing = [job for job, s in states.items() if s is None or "status" not in s]
                unseen = f"; no status file yet for {', '.join(missing)}" if missing else ""
                sys.exit(f"only {done} of {shots} shots were finished in {TIMEOUT_S:.0f} s{unseen}")
            if done // 10 != shown // 10:
                print(f"   {done}/{shots} shots run, analysed and archived", flush=True)
                shown = done
            wake.event.wait(5.0)  # woken by the next status change; 5 s if one is lost
    finally:
        observer.stop()
        observer.join()
    print(f"   all {len(job_ids)} jobs finished in {time.monotonic() - begun:.1f} s")


def no_result(job: str, status: dict[str, Any]) -> str:
    """What to say instead of a result file that was not written (the job did not finish)."""
    return f"no result file: job {job} ended {status.get('status')} ({status.get('error_message')})"


def stop(process: subprocess.Popen[bytes] | None, name: str) -> None:
    """SIGTERM (the daemon finishes its step), then SIGKILL if it has not ended in 30 s:
    the demo never leaves a daemon behind, whatever happened."""
    if process is None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        print(f"   {name} (pid {process.pid}) did not stop on SIGTERM in 30 s: killed")
        return
    print(f"   {name} (pid {process.pid}) stopped")


def stop_leftover_daemons(root: Path) -> None:
    """Daemons of an earlier demo in *root* that was cut short (their pids are in their lock
    files): stopped, so that they do not serve the new tree made at the same place."""
    for lock in ("spooler.lock", "result.lock"):
        try:
            pid = int((root / "state" / lock).read_text().split()[0])
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if str(root / "labspool.yaml").encode() not in command:
            continue  # the pid is another process by now
        os.kill(pid, signal.SIGKILL)
        print(f"   stopped a daemon left by an earlier demo (pid {pid})")


def main() -> int:
    logging.getLogger("watchdog").setLevel(logging.CRITICAL)  # its stop() races and logs it
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "demo").absolute()
    if root.exists():
        if not (root / MARKER).exists():
            sys.exit(f"{root} exists and was not made by this demo; choose another folder")
        stop_leftover_daemons(root)
        labspool("lab", "down", str(root), check=False)
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).touch()

    step(f"labspool lab up {root}   (runmanager and BLACS, offscreen, on dummy devices)")
    config = labspool("lab", "up", str(root)).strip().splitlines()[-1]
    print(f"   configuration: {config}")
    spooler = results = None
    failed: list[str] = []
    try:
        for job in EXAMPLES:
            step(f"labspool validate {job.relative_to(REPO)} --compile")
            print(indent(labspool("--config", config, "validate", str(job), "--compile")))

        step("labspool run   (the spooler, in the background)")
        spooler = start(root, "spooler", "spooler.cli", config)
        step("labspool-result run   (the result daemon, in the background)")
        results = start(root, "result", "result.cli", config)

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

        step("waiting until every job has finished (one engaged at a time)")
        job_ids = [job.stem for job in EXAMPLES]
        wait_until_finished(root, [*job_ids, broken_id], expected)

        step("labspool status")
        print(indent(labspool("--config", config, "status")))
        statuses = {job: read_json(root / "status" / f"{job}.json") or {} for job in job_ids}
        broken_status = read_json(root / "status" / f"{broken_id}.json") or {}
        print(f"\n   broken: {broken_status.get('error_message')}")

        step("on the store: archived shots and a CSV per experiment (lyse's DataFrame)")
        for job in EXAMPLES:
            store = root / "sds" / job.stem
            csvs = ", ".join(sorted(p.name for p in store.glob("*.csv")))
            print(f"   sds/{job.stem}/: {len(list(store.glob('*/*.h5')))} shots; {csvs}")
        processed = sorted((root / "processed").glob("*.json"))
        if processed:
            print(f"\n   processed/{processed[0].name} (an address file from the BLACS plugin):")
            print(indent(processed[0].read_text()))
        else:
            print("\n   processed/ holds no address file")

        step("results/squeezing.json (the Qiskit result format the clients read)")
        squeezing = root / "results" / "squeezing.json"
        if read_json(squeezing) is None:
            print(indent(no_result("squeezing", statuses.get("squeezing", {}))))
        else:
            print(indent(squeezing.read_text()))

        step("the physics: a Rabi flop on 50 atoms (results/rabi.json)")
        rabi = json.loads((REPO / "config" / "examples" / "rabi.json").read_text())
        rabi_result = read_json(root / "results" / "rabi.json")
        if rabi_result is None:
            print(indent(no_result("rabi", statuses.get("rabi", {}))))
        else:
            measured: dict[str, Any] = {
                r["header"]["name"]: r["data"]["memory"] for r in rabi_result["results"]
            }
            for name, body in sorted(rabi.items()):
                angle = body["instructions"][1][2][0]
                counts = [int(m) for m in measured[name]]
                mean = sum(counts) / len(counts)
                exact = 50 * math.sin(angle / 2) ** 2
                print(f"   {name}: rlx {angle:.3f}  atoms {counts}")
                print(f"      mean {mean:.1f} atoms; the exact expectation is {exact:.1f}")
            pictures = rabi_result.get("header", {}).get("artefacts", {})
            for picture in pictures.values():
                print(f"\n   the picture of the job (the multi-shot routine): {picture}")
        failed = [job for job, status in statuses.items() if status.get("status") != "DONE"]
    finally:
        step("shutting down")
        stop(results, "result daemon")
        stop(spooler, "spooler")
        print(indent(labspool("lab", "down", str(root), check=False)))
    print(f"\nEverything is left in {root} to inspect.")
    if failed:
        print(f"Not DONE: {', '.join(failed)} (see labspool status above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
