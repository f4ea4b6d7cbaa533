#!/usr/bin/env python3
"""Benchmark of the machine's duty cycle and of a job's turnaround, on the virtual lab.

Everything runs for real: ``labspool lab up`` (the genuine runmanager and BLACS, offscreen,
on dummy devices), the spooler (``labspool run``) and the result daemon
(``labspool-result run``) as their own processes. The times are the shots' own: a shot
starts at the HDF5 root attribute ``run time`` BLACS stamps on it (local time, when the
science phase starts) and ends at the ``completed_at`` of its address file (UTC, written by
labspool's BLACS plugin when BLACS is done with it).

1. Duty cycle: N jobs of one experiment x M shots each are submitted while the spooler is
   paused, so that all are queued before the first starts, then the spooler is resumed and
   every job runs to DONE. With all the shots sorted by start:

   * the gap within a job: start of a shot - end of the shot before it, of the same job
     (BLACS's own time between two queued shots: the floor);
   * the gap between jobs: start of a job's first shot - end of the last shot of the job
     before it (median and max);
   * busy share: the sum of the shots' durations / (last end - first start); its floor, the
     busy share of a machine whose every gap is the within-job median:
     sum of durations / (sum of durations + (shots - 1) x median within-job gap);
   * the tail of each job: its last shot's ``completed_at`` until DONE.

   Baseline in the same run: ``lab.look_ahead_jobs 0`` (a job is engaged only once the one
   before it finished, the old behaviour), against labspool's shipped look-ahead defaults;
   each on a fresh lab with shots of a realistic length (``--load-time-s``, 0.3 s of loading:
   ~0.37 s from ``run time`` to ``completed_at``; BLACS's programming of the devices before
   it falls in the gap). Both again with N one-shot jobs, where no job has a gap within it: their
   floor is the within-job gap of the M-shot run with the same setting. Goals: gap between
   jobs / gap within a job <= 1.2, busy share / floor >= 0.97, tail <= 0.5 s.

2. Turnaround: on an idle machine (the lab of the last duty-cycle run, with the shipped
   defaults, once its jobs are DONE: both daemons warm, as on a machine that runs for
   days), one-shot jobs are renamed into the dump folder one after the other, each once
   the one before is DONE, and the time from the rename until DONE is split into stages:
   pickup (until INITIALIZING), validation (until QUEUED), engage and compile (until the
   shot's ``run time``; QUEUED until RUNNING is given too), the shot (until its
   ``completed_at``), analysis and archive (until the ledger's ``archived_at``), result
   (until DONE). Medians are reported. The states' times are the job store's transitions
   (opened read-only), which the status files' history shows rounded to milliseconds.

Figures are printed and, with ``--out``, written as JSON. The machine is shared: the CPU
time other processes (those without the benchmark's marker in their environment) used
while each measurement ran is reported as a share of the machine, with a warning above
10%; such figures are noise. Everything runs under one
temporary folder (``$TMPDIR``), removed at the end, and every process started is stopped by
pid (``labspool lab down`` for the lab's). ``--dir DIR`` keeps the labs there instead, to
inspect the logs. ``--smoke`` runs the whole benchmark at a tiny size (to check that it
runs, not to measure).

    python scripts/bench_dutycycle.py [--jobs 8] [--shots 8] [--single-jobs 8]
                                      [--turnaround-jobs 5] [--load-time-s 0.3] [--out FILE]
    python scripts/bench_dutycycle.py --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchkit import finish, parse_sized

from spooler.core.labprofile import stop_process
from spooler.core.settings import Settings, load_settings

FULL = {"jobs": 8, "shots": 8, "single_jobs": 8, "turnaround_jobs": 5}
SMOKE = {"jobs": 2, "shots": 2, "single_jobs": 2, "turnaround_jobs": 1}
LOAD_TIME_S = 0.3
FINAL = ("DONE", "ERROR", "CANCELLED")
GOALS = {"between_over_within_max": 1.2, "busy_over_floor_min": 0.97, "tail_max_s": 0.5}
POLL_S = 0.05


# -- processes ----------------------------------------------------------------------------


def labspool(*args: str, timeout: float = 300) -> str:
    """Run a ``labspool`` command; its output (it must succeed)."""
    run = subprocess.run(
        [sys.executable, "-m", "spooler.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if run.returncode != 0:
        raise RuntimeError(f"labspool {' '.join(args)} failed:\n{run.stderr[-3000:]}")
    return run.stdout


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(POLL_S)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in *path*; None while it is not there (or caught being replaced)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return document if isinstance(document, dict) else None


MARKER = "LABSPOOL_BENCH_DUTYCYCLE"  # in the environment of every process the benchmark starts
OTHER_CPU_WARN = 0.1  # of the machine's CPU time used by others: the figures are noise


class CpuMeter:
    """CPU time the machine spent on processes other than the benchmark's (those that carry
    its marker in their environment, and itself) while a measurement ran, as a share of
    the machine's capacity: a measure of how noisy the figures are."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.busy_s, self.ours_s = self._busy_s(), self._ours_s()

    @staticmethod
    def _busy_s() -> float:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = values[3] + values[4]  # idle, iowait
        return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours_s() -> float:
        own = os.times()
        total = own.user + own.system + own.children_user + own.children_system
        marker = f"{MARKER}={os.environ[MARKER]}".encode()
        ticks = 0
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if marker not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone, or not ours to read
                continue
            ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        return total + ticks / os.sysconf("SC_CLK_TCK")

    def other_share(self) -> float:
        elapsed = time.monotonic() - self.started
        others = (self._busy_s() - self.busy_s) - (self._ours_s() - self.ours_s)
        return max(0.0, others) / (elapsed * (os.cpu_count() or 1))


@dataclass
class Lab:
    root: Path
    settings: Settings
    daemons: dict[str, subprocess.Popen[bytes]]

    def status(self, job_id: str) -> dict[str, Any]:
        return read_json(self.settings.folders.status / f"{job_id}.json") or {}

    def labspool(self, *args: str) -> str:
        return labspool("--config", str(self.settings.path), *args)

    def submit(self, job_id: str, job: dict[str, Any]) -> float:
        """Drop the job as ``labspool submit`` does (staged, renamed into the dump folder);
        the time of the rename."""
        folders = self.settings.folders
        staged = folders.staging / f".{job_id}.json.tmp"
        staged.write_text(json.dumps(job))
        at = time.time()
        os.rename(staged, folders.dump / f"{job_id}.json")
        return at

    def store(self) -> sqlite3.Connection:
        """The job store, read-only."""
        uri = f"file:{self.settings.folders.database}?mode=ro"
        return sqlite3.connect(uri, uri=True)

    def check_daemons(self) -> None:
        for name, process in self.daemons.items():
            if process.poll() is not None:
                raise RuntimeError(f"the {name} exited with code {process.returncode}")

    def wait_for_states(
        self, job_ids: list[str], states: tuple[str, ...], timeout_s: float
    ) -> None:
        def reached() -> bool:
            self.check_daemons()
            return all(self.status(j).get("status") in states for j in job_ids)

        try:
            wait_for(reached, timeout_s, f"{len(job_ids)} job(s) to be {'/'.join(states)}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.evidence(job_ids)}") from None

    def evidence(self, job_ids: list[str]) -> str:
        """What went wrong: each job's state and detail, and the ends of the daemons' logs."""
        lines = []
        for job_id in job_ids:
            s = self.status(job_id)
            lines.append(
                f"  {job_id}: {s.get('status')} shots_done={s.get('shots_done')} "
                f"detail={s.get('detail')!r} error={s.get('error_message')!r}"
            )
        for name in ("spooler", "result"):
            log = self.root / f"{name}.log"
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-15:]
                lines.append(f"  {name}.log (end):\n    " + "\n    ".join(tail))
        return "\n".join(lines)

    def require_done(self, job_ids: list[str]) -> None:
        bad = [j for j in job_ids if self.status(j).get("status") != "DONE"]
        if bad:
            raise RuntimeError(f"jobs not DONE: {', '.join(bad)}\n{self.evidence(bad)}")


def _daemon(root: Path, config: Path, module: str, name: str) -> subprocess.Popen[bytes]:
    log = (root / f"{name}.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--config", str(config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        log.close()


@contextlib.contextmanager
def running_lab(
    root: Path, *, look_ahead_jobs: int | None, load_time_s: float, paused: bool
) -> Iterator[Lab]:
    """A fresh virtual lab under *root* with both daemons running (the spooler *paused*);
    everything stopped by pid afterwards, whatever happened."""
    argv = ["lab", "up", str(root), "--load-time-s", repr(load_time_s)]
    if look_ahead_jobs is not None:
        argv += ["--look-ahead-jobs", str(look_ahead_jobs)]
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    try:
        config = Path(labspool(*argv).strip().splitlines()[-1])
        lab = Lab(root, load_settings(config), daemons)
        if paused:
            lab.labspool("pause", "--reason", "lining up the benchmark's jobs")
        daemons["result daemon"] = _daemon(root, config, "result.cli", "result")
        daemons["spooler"] = _daemon(root, config, "spooler.cli", "spooler")

        def ready() -> bool:
            lab.check_daemons()
            return all(
                ": watching " in (root / f"{n}.log").read_text(errors="replace")
                for n in ("spooler", "result")
            )

        wait_for(ready, 120, "both daemons to watch their folders")
        yield lab
    finally:
        for process in reversed(daemons.values()):
            stop_process(process, timeout_s=30.0)
        if (root / "lab" / "processes.json").exists():
            labspool("lab", "down", str(root))


def job(shots: int, seed: int) -> dict[str, Any]:
    """A singlequdit job of one experiment: load 50 atoms, a pi/2 pulse, measure."""
    return {
        "experiment_0": {
            "instructions": [
                ["load", [0], [50.0]],
                ["rlx", [0], [1.5707963267948966]],
                ["measure", [0], []],
            ],
            "num_wires": 1,
            "shots": shots,
            "wire_order": "sequential",
            "seed": seed,
        }
    }


# -- the shots' own times -----------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    job_id: str
    name: str
    start: float  # BLACS's 'run time'
    end: float  # the address file's completed_at

    @property
    def duration(self) -> float:
        return self.end - self.start


def run_time(path: Path) -> float:
    import h5py

    with h5py.File(path, "r") as shot:
        value = shot.attrs["run time"]
    text = value.decode() if isinstance(value, bytes) else str(value)
    form = "%Y%m%dT%H%M%S.%f" if "." in text else "%Y%m%dT%H%M%S"
    return datetime.strptime(text, form).timestamp()  # local time, as BLACS stamps it


def iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def archived_shots(lab: Lab, job_ids: list[str]) -> list[Shot]:
    """Every archived shot of *job_ids*, sorted by start. A shot's address file is the one
    naming a shot of the same file name, job and experiment (runmanager names the files of
    jobs compiled within the same second alike)."""
    folders = lab.settings.folders
    ended: dict[tuple[str, str, str], float] = {}
    for folder in (folders.processed, folders.addresses):
        for path in folder.glob("*.json"):
            record = read_json(path)
            if record is not None and isinstance(record.get("shot"), str):
                key = (str(record["job_id"]), str(record["experiment"]), Path(record["shot"]).name)
                ended[key] = iso(record["completed_at"])
    shots = []
    for job_id in job_ids:
        for path in sorted((folders.sds / job_id).glob("*/*.h5")):
            key = (job_id, path.parent.name, path.name)
            if key not in ended:
                raise RuntimeError(f"no address file names the archived shot {path}")
            shots.append(Shot(job_id, path.name, run_time(path), ended[key]))
    return sorted(shots, key=lambda s: s.start)


def entered(lab: Lab, job_id: str) -> dict[str, float]:
    """When *job_id* first entered each state: the job store's transitions (read-only), the
    times its status file's history shows, there rounded to milliseconds."""
    with contextlib.closing(lab.store()) as db:
        rows = db.execute(
            "SELECT to_state, MIN(at) FROM transitions WHERE job_id = ? GROUP BY to_state",
            (job_id,),
        ).fetchall()
    return {str(state): float(at) for state, at in rows}


def archived_at(lab: Lab, job_id: str) -> float:
    """When the job's last shot was archived (the ledger, read-only)."""
    with contextlib.closing(lab.store()) as db:
        (last,) = db.execute(
            "SELECT MAX(archived_at) FROM shots WHERE job_id = ? AND state = 'archived'",
            (job_id,),
        ).fetchone()
    if last is None:
        raise RuntimeError(f"the ledger has no archived shot of {job_id}")
    return float(last)


# -- 1. duty cycle ------------------------------------------------------------------------


def duty_cycle(
    lab: Lab, *, jobs: int, shots: int, load_time_s: float, within_floor_s: float | None = None
) -> dict[str, Any]:
    """*jobs* jobs of *shots* shots each, all queued on the paused *lab*, then run.
    *within_floor_s*: the within-job gap to use for the floor when the jobs have none (one
    shot each)."""
    ids = [f"dc{i:03d}" for i in range(jobs)]
    for i, job_id in enumerate(ids):
        lab.submit(job_id, job(shots, seed=i + 1))
    lab.wait_for_states(ids, ("QUEUED",), 60)
    meter = CpuMeter()
    lab.labspool("resume")
    lab.wait_for_states(ids, FINAL, 120 + jobs * shots * (load_time_s + 3.0))
    other_cpu = meter.other_share()
    lab.require_done(ids)
    done = {job_id: entered(lab, job_id)["DONE"] for job_id in ids}
    all_shots = archived_shots(lab, ids)
    if len(all_shots) != jobs * shots:
        raise RuntimeError(f"{len(all_shots)} shots archived, {jobs * shots} expected")
    within: list[float] = []
    between: list[float] = []
    for before, after in itertools.pairwise(all_shots):
        (within if before.job_id == after.job_id else between).append(after.start - before.end)
    last_end = {s.job_id: s.end for s in all_shots}  # sorted by start: the last one stays
    tails = [done[j] - last_end[j] for j in ids]
    busy = sum(s.duration for s in all_shots)
    span = all_shots[-1].end - all_shots[0].start
    within_median = statistics.median(within) if within else within_floor_s
    figures: dict[str, Any] = {
        "look_ahead_jobs": lab.settings.lab.look_ahead_jobs,
        "look_ahead_shots": lab.settings.lab.look_ahead_shots,
        "jobs": jobs,
        "shots_per_job": shots,
        "shots": len(all_shots),
        "shot_median_s": statistics.median(s.duration for s in all_shots),
        "span_s": span,
        "within_job_gap_median_s": statistics.median(within) if within else None,
        "within_job_gap_used_s": within_median,
        "between_jobs_gap_median_s": statistics.median(between),
        "between_jobs_gap_max_s": max(between),
        "between_jobs_gaps_s": between,
        "busy_share": busy / span,
        "tail_median_s": statistics.median(tails),
        "tail_max_s": max(tails),
        "other_cpu_share": other_cpu,
    }
    if within_median is not None:
        floor = busy / (busy + (len(all_shots) - 1) * within_median)
        figures["floor_busy_share"] = floor
        figures["busy_over_floor"] = figures["busy_share"] / floor
        figures["between_over_within"] = figures["between_jobs_gap_median_s"] / within_median
    return figures


def improvement(baseline: dict[str, Any], pipelined: dict[str, Any]) -> dict[str, Any]:
    b, p = baseline["between_jobs_gap_median_s"], pipelined["between_jobs_gap_median_s"]
    return {
        "between_jobs_gap_baseline_over_pipelined": b / p if p > 0 else None,
        "busy_share_gain": pipelined["busy_share"] - baseline["busy_share"],
        "span_baseline_over_pipelined": baseline["span_s"] / pipelined["span_s"],
    }


# -- 2. turnaround ------------------------------------------------------------------------

STAGES = ("pickup", "validation", "engage_compile", "shot", "analysis_archive", "result")


def turnaround(lab: Lab, *, jobs: int) -> dict[str, Any]:
    """*jobs* one-shot jobs on the idle *lab*, one after the other."""
    per_job: list[dict[str, Any]] = []
    meter = CpuMeter()
    for n in range(jobs):
        time.sleep(1.0)  # idle: nothing left of the job before in either daemon
        job_id = f"ta{n:03d}"
        submitted = lab.submit(job_id, job(1, seed=n + 1))
        lab.wait_for_states([job_id], FINAL, 120)
        lab.require_done([job_id])
        states = entered(lab, job_id)
        (shot,) = archived_shots(lab, [job_id])
        archived = archived_at(lab, job_id)
        stages = {
            "pickup": states["INITIALIZING"] - submitted,
            "validation": states["QUEUED"] - states["INITIALIZING"],
            "engage_compile": shot.start - states["QUEUED"],
            "shot": shot.duration,
            "analysis_archive": archived - shot.end,
            "result": states["DONE"] - archived,
        }
        per_job.append(
            {
                "job_id": job_id,
                "stages_s": stages,
                "queued_to_running_s": states["RUNNING"] - states["QUEUED"],
                "total_s": states["DONE"] - submitted,
                "tail_s": states["DONE"] - shot.end,
            }
        )
    return {
        "jobs": jobs,
        "stages_median_s": {
            stage: statistics.median(r["stages_s"][stage] for r in per_job) for stage in STAGES
        },
        "queued_to_running_median_s": statistics.median(r["queued_to_running_s"] for r in per_job),
        "total_median_s": statistics.median(r["total_s"] for r in per_job),
        "tail_median_s": statistics.median(r["tail_s"] for r in per_job),
        "tail_max_s": max(r["tail_s"] for r in per_job),
        "other_cpu_share": meter.other_share(),
        "per_job": per_job,
    }


# -- report -------------------------------------------------------------------------------


def _s(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: dict[str, Any]) -> None:
    print(
        f"duty cycle on the virtual lab (load_time_s {results['load_time_s']}; "
        f"{results['cpus']} CPUs); gaps and tails in seconds"
    )
    header = (
        f"{'run':<34} {'shot':>6} {'within':>7} {'betw.med':>8} {'betw.max':>8} "
        f"{'b/w':>6} {'busy':>6} {'floor':>6} {'busy/fl':>7} {'tail.med':>8} {'tail.max':>8} "
        f"{'span':>7}"
    )
    print(header)
    for shape, runs in results["duty_cycle"].items():
        for label in ("look_ahead_off", "look_ahead_default"):
            r = runs[label]
            name = (
                f"{r['jobs']}x{r['shots_per_job']} "
                + ("look-ahead off" if label == "look_ahead_off" else "default")
                + f" (jobs {r['look_ahead_jobs']}, shots {r['look_ahead_shots']})"
            )
            within = r["within_job_gap_median_s"]
            within_text = (
                _s(within) if within is not None else f"({_s(r['within_job_gap_used_s'])})"
            )
            print(
                f"{name:<34} {_s(r['shot_median_s']):>6} {within_text:>7} "
                f"{_s(r['between_jobs_gap_median_s']):>8} {_s(r['between_jobs_gap_max_s']):>8} "
                f"{_s(r.get('between_over_within'), 2):>6} {_s(r['busy_share']):>6} "
                f"{_s(r.get('floor_busy_share')):>6} {_s(r.get('busy_over_floor')):>7} "
                f"{_s(r['tail_median_s']):>8} {_s(r['tail_max_s']):>8} {_s(r['span_s'], 1):>7}"
            )
        i = runs["improvement"]
        print(
            f"  {shape}: gap between jobs {_s(i['between_jobs_gap_baseline_over_pipelined'], 1)}x "
            f"shorter than the baseline, busy share {i['busy_share_gain']:+.3f}, "
            f"span (first start to last end) baseline / default "
            f"{_s(i['span_baseline_over_pipelined'], 2)}"
        )
    print("  (within in parentheses: the one-shot jobs have none; the M-shot run's is used)")
    shares = {
        f"{runs[label]['jobs']}x{runs[label]['shots_per_job']} {label}": runs[label][
            "other_cpu_share"
        ]
        for runs in results["duty_cycle"].values()
        for label in ("look_ahead_off", "look_ahead_default")
    }
    shares["turnaround"] = results["turnaround"]["other_cpu_share"]
    print(
        "  CPU used by other processes while measuring: "
        + ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    )
    if max(shares.values()) > OTHER_CPU_WARN:
        print("  WARNING: something else ran on the machine meanwhile: read these figures as noise")
    t = results["turnaround"]
    stages = ", ".join(f"{k} {v:.3f}" for k, v in t["stages_median_s"].items())
    print(
        f"turnaround of a 1-shot job on an idle machine, median of {t['jobs']}: "
        f"{t['total_median_s']:.3f} s = {stages} "
        f"(queued->running {t['queued_to_running_median_s']:.3f}); "
        f"tail median {t['tail_median_s']:.3f} s, max {t['tail_max_s']:.3f} s"
    )
    print("goals, with the shipped defaults:")
    for goal, verdict in results["goals"].items():
        figures = ", ".join(f"{k} {v:.3f}" for k, v in verdict["figures"].items())
        print(f"  {goal}: {'met' if verdict['met'] else 'MISSED'} ({figures})")


def check_goals(results: dict[str, Any]) -> dict[str, Any]:
    """The goals, with the shipped defaults: each figure (per job shape; the tail also of
    the turnaround jobs) and whether all of them meet it."""
    duty = results["duty_cycle"]
    ratios = {
        shape: runs["look_ahead_default"]["between_over_within"] for shape, runs in duty.items()
    }
    busy = {shape: runs["look_ahead_default"]["busy_over_floor"] for shape, runs in duty.items()}
    tails = {shape: runs["look_ahead_default"]["tail_max_s"] for shape, runs in duty.items()}
    tails["turnaround"] = results["turnaround"]["tail_max_s"]
    return {
        "between/within <= 1.2": {
            "figures": ratios,
            "met": max(ratios.values()) <= GOALS["between_over_within_max"],
        },
        "busy/floor >= 0.97": {
            "figures": busy,
            "met": min(busy.values()) >= GOALS["busy_over_floor_min"],
        },
        "tail max <= 0.5 s": {"figures": tails, "met": max(tails.values()) <= GOALS["tail_max_s"]},
    }


def isolate(root: Path) -> None:
    """Mark this process's environment (:data:`MARKER`, inherited by every process it
    starts) and keep their runtime folder, caches and settings inside *root*: Qt (BLACS and
    runmanager run offscreen) makes $TMPDIR/runtime-$USER when there is no runtime folder,
    and matplotlib (which the suite imports) writes ~/.config and ~/.cache."""
    os.environ[MARKER] = uuid.uuid4().hex
    for variable, name in (
        ("XDG_RUNTIME_DIR", "runtime"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("MPLCONFIGDIR", "matplotlib"),
    ):
        (root / "home" / name).mkdir(mode=0o700, parents=True)
        os.environ[variable] = str(root / "home" / name)


def run_all(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Each duty-cycle run on a fresh lab; the turnaround on the last one (shipped defaults)
    once it is idle."""
    begun = time.monotonic()
    isolate(root)
    duty: dict[str, Any] = {}
    within: dict[str, float | None] = {}
    results: dict[str, Any] = {"load_time_s": args.load_time_s, "cpus": os.cpu_count()}
    for shape, jobs, shots in (
        ("multi_shot", args.jobs, args.shots),
        ("single_shot", args.single_jobs, 1),
    ):
        runs: dict[str, Any] = {}
        for label, look_ahead in (("look_ahead_off", 0), ("look_ahead_default", None)):
            print(
                f"[{time.monotonic() - begun:5.0f} s] {shape}: {jobs} jobs x {shots} shot(s), "
                f"{label}",
                flush=True,
            )
            with running_lab(
                root / f"{shape}-{label}",
                look_ahead_jobs=look_ahead,
                load_time_s=args.load_time_s,
                paused=True,
            ) as lab:
                runs[label] = figures = duty_cycle(
                    lab,
                    jobs=jobs,
                    shots=shots,
                    load_time_s=args.load_time_s,
                    within_floor_s=within.get(label),
                )
                if shape == "single_shot" and look_ahead is None:
                    print(
                        f"[{time.monotonic() - begun:5.0f} s] turnaround: "
                        f"{args.turnaround_jobs} one-shot job(s) on the idle machine",
                        flush=True,
                    )
                    results["turnaround"] = turnaround(lab, jobs=args.turnaround_jobs)
            if shape == "multi_shot":
                within[label] = figures["within_job_gap_median_s"]
        runs["improvement"] = improvement(runs["look_ahead_off"], runs["look_ahead_default"])
        duty[shape] = runs
    print(f"[{time.monotonic() - begun:5.0f} s] done", flush=True)
    results["duty_cycle"] = duty
    results["goals"] = check_goals(results)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, help=f"jobs of M shots (default {FULL['jobs']})")
    parser.add_argument("--shots", type=int, help=f"M, at least 2 (default {FULL['shots']})")
    parser.add_argument(
        "--single-jobs", type=int, help=f"one-shot jobs (default {FULL['single_jobs']})"
    )
    parser.add_argument("--turnaround-jobs", type=int, help=f"default {FULL['turnaround_jobs']}")
    parser.add_argument("--load-time-s", type=float, default=LOAD_TIME_S)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--dir", type=Path, help="run the labs in this new folder and keep it (default: $TMPDIR)"
    )
    args = parse_sized(parser, FULL, SMOKE, "the whole benchmark at a tiny size")
    if args.shots < 2 or min(args.jobs, args.single_jobs) < 2 or args.turnaround_jobs < 1:
        parser.error("--shots and --jobs / --single-jobs need 2 at least, --turnaround-jobs 1")
    if args.dir is not None:
        args.dir.mkdir(parents=True)
        results = run_all(args.dir.absolute(), args)
    else:
        with tempfile.TemporaryDirectory(prefix="labspool-bench-dutycycle-") as tmp:
            results = run_all(Path(tmp), args)
    report(results)
    return finish(args, results)


if __name__ == "__main__":
    sys.exit(main())
