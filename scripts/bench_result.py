#!/usr/bin/env python3
"""Benchmark of the result daemon, with baselines measured in the same run.

1. Throughput: N shots of about 1 MB (runmanager run files with a camera image, as the
   virtual apparatus leaves them) go through the daemon: analysis, verified archiving to the
   store, ledger, local deletion, and the job's completion; with the default executor (2
   worker processes) and with ``inline`` (the daemon's own process). Baseline: a plain copy
   of the same files to the same store, just before each (the median of three).
2. Finishing a job of M shots: the daemon's completion step (CSVs built from the ledger, the
   result JSON, DONE) against lyse's ``get_dataframe_from_shots`` on the same archived shots.
3. Where a shot's time goes: the N shots again through the daemon with ``inline`` (every
   stage in one thread, on one clock), each stage's own time per shot (``stagetimer``: the
   functions of the path wrapped in place for the run), next to the plain copy's time.

The shots and their address files are what the real apparatus leaves: each shot in the
tree's shot folder of its job, attempt and experiment, with the globals runmanager sets
(job id, experiment, shot index, attempt), and its address file written by the BLACS
plugin's own ``shot_record`` and ``write_address_file``.

Runs in a throw-away labscript profile with a zlock server of its own (stopped by pid).
``--smoke`` runs the whole benchmark at a size that takes seconds (to check that it runs,
not to measure).

    python scripts/bench_result.py [--shots 200] [--shot-mb 1.0] [--big-job 500] [--out FILE]
    python scripts/bench_result.py --smoke
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchkit import finish, labscript_sandbox, parse_sized
from stagetimer import StageTimer

from spooler.core.scaffold import write_tree
from spooler.core.settings import ExecutorSettings, Settings, load_settings

FULL = {"shots": 200, "shot_mb": 1.0, "big_job": 500}
SMOKE = {"shots": 10, "shot_mb": 1.0, "big_job": 20}

EXPERIMENT = "experiment_0"
ATTEMPT = 1


def make_shots(settings: Settings, job_id: str, count: int, shot_mb: float) -> list[Path]:
    """*count* shots of attempt 1 of *job_id*, each with the address file the BLACS plugin
    writes when BLACS has run it."""
    import h5py
    import numpy as np
    import runmanager

    from spooler.lab.blacs_plugin.labspool_addresses import shot_record, write_address_file

    side = max(8, int((shot_mb * 2**20 / 4) ** 0.5))
    rng = np.random.default_rng(1)
    folder = settings.folders.shot_folder(job_id, ATTEMPT, EXPERIMENT)
    sequence_id = f"20261122T000000_{EXPERIMENT}"
    sequence = {
        "script_basename": EXPERIMENT,
        "sequence_date": "2026-11-22T00:00:00",
        "sequence_index": 1,
        "sequence_id": sequence_id,
    }
    # the globals labspool has runmanager set, under the names the daemon checks
    names = settings.lab.globals
    plugin_names = {  # the plugin's names for them (its labconfig keys)
        "job_id": names.job_id,
        "experiment": names.experiment_name,
        "shot": names.shot,
        "attempt": names.attempt,
    }
    digits = int(np.ceil(np.log10(count)))  # runmanager's numbering of a sequence's files
    paths = []
    for i in range(count):
        path = folder / f"{sequence_id}_{i:0{digits}d}.h5"
        runmanager.make_single_run_file(
            str(path),
            None,
            {
                names.job_id: job_id,
                names.experiment_name: EXPERIMENT,
                names.shot: i,
                names.seed: 1,
                names.attempt: ATTEMPT,
            },
            sequence,
            i,
            count,
        )
        atoms = int(rng.binomial(100, 0.5))
        image = rng.normal(0.0, 0.3, (side, side)).astype(np.float32)
        image[side // 2, side // 2] += atoms * 50.0
        with h5py.File(path, "r+") as shot:
            shot.attrs["run time"] = "20261122T000001"
            shot.create_group("data")
            dataset = shot.require_group("images/top/fluorescence").create_dataset(
                "atoms", data=image
            )
            dataset.attrs["signal_per_atom"] = 50.0
        write_address_file(str(settings.folders.addresses), shot_record(str(path), plugin_names))
        paths.append(path)
    return paths


def running_job(settings: Settings, job_id: str, shots: int) -> None:
    from spooler.core.jobs import Jobs
    from spooler.core.states import JobState

    jobs = Jobs(settings.folders)
    try:
        with jobs.change() as tx:
            tx.add_job(
                job_id=job_id,
                backend="singlequdit",
                source_name=f"{job_id}.json",
                claim_name=job_id,
            )
            tx.transition(job_id, JobState.QUEUED)
            tx.add_experiment(job_id, 1, "experiment_0", shots)
            tx.experiment_submitted(job_id, 1, "experiment_0", shots)
            tx.experiment_engaged(job_id, 1, "experiment_0")
            tx.transition(job_id, JobState.RUNNING)
    finally:
        jobs.close()


def with_executor(settings: Settings, executor: ExecutorSettings) -> Settings:
    return replace(settings, result=replace(settings.result, executor=executor))


def plain_copy_s(files: list[Path], store: Path) -> float:
    """Seconds to copy *files* to *store*: the median of three (a copy's speed swings with
    the page cache's state)."""
    copies = []
    for n in range(3):
        plain = store / f"plain-copy-{n}"
        plain.mkdir(parents=True)
        start = time.perf_counter()
        for path in files:
            shutil.copyfile(path, plain / path.name)
        copies.append(time.perf_counter() - start)
        shutil.rmtree(plain)
    return sorted(copies)[1]


def throughput(
    root: Path, shots: int, shot_mb: float, executor: ExecutorSettings
) -> dict[str, Any]:
    """The daemon's rate with *executor*, its workers started before the clock starts, and
    a plain copy of the same files to the same store measured just before it."""
    from result.daemon import ResultDaemon

    settings = load_settings(write_tree(root / f"throughput-{executor.kind}", "singlequdit"))
    settings = with_executor(settings, executor)
    running_job(settings, "bench", shots)
    files = make_shots(settings, "bench", shots, shot_mb)
    size_mb = sum(p.stat().st_size for p in files) / shots / 2**20
    copy_s = plain_copy_s(files, settings.folders.sds)
    daemon = ResultDaemon(settings)
    try:
        assert daemon.executor.wait_ready(120), "the workers did not start"
        start = time.perf_counter()
        done = daemon.run_once()
        daemon_s = time.perf_counter() - start
        state = daemon.jobs.read.require("bench").state.value
    finally:
        daemon.close()
    assert done == shots and state == "DONE", (done, state)
    return {
        "executor": executor.kind,
        "workers": executor.worker_count(),
        "shots": shots,
        "shot_mb": round(size_mb, 2),
        "daemon_shots_per_s": shots / daemon_s,
        "plain_copy_shots_per_s": shots / copy_s,
        "daemon_over_plain_copy": copy_s / daemon_s,
    }


def stages(root: Path, shots: int, shot_mb: float) -> dict[str, Any]:
    """Each stage's own time per shot, the daemon ``inline`` (see the module's text)."""
    import dataclasses

    import lyse

    import result.task as task
    from result.collecting import Collector
    from result.daemon import ResultDaemon
    from result.finishing import JobFinisher
    from result.intake import Intake
    from result.placing import Placing

    settings = load_settings(write_tree(root / "stages", "singlequdit"))
    settings = with_executor(settings, ExecutorSettings(kind="inline"))
    running_job(settings, "stages", shots)
    files = make_shots(settings, "stages", shots, shot_mb)
    copy_s = plain_copy_s(files, settings.folders.sds)
    placing, executors = sys.modules["result.placing"], sys.modules["result.executors"]
    load_routines = task.__dict__["load_routines"]
    with StageTimer() as timer:

        def timed_routines(specs: tuple[str, ...]) -> list[Any]:
            return [
                dataclasses.replace(
                    r, function=timer.timed("routine: its reads and sums", r.function)
                )
                for r in load_routines(specs)
            ]

        for owner, name, stage in (
            (shutil, "copyfile", "task: the shot copied to its work copy on the store"),
            (task, "check_shot", "task: the shot's globals checked against its address"),
            (lyse.Run, "__init__", "lyse: Run(shot) made, per routine"),
            (lyse.Run, "save_result", "lyse: the routine's results saved"),
            (lyse.Run, "save_result_array", "lyse: the routine's results saved"),
            (task, "analyse", "lyse: the shot opened for the results (r+)"),
            (task, "shot_row", "lyse: the shot's DataFrame row read back"),
            (task, "checksum", "task: SHA-256 of the work copy"),
            (task, "flush_file", "task: fsync of the work copy"),
            (executors, "run_shot", "task: the rest"),
            (placing, "place", "place: the work copy read back, verified, renamed"),
            (placing, "fsync_dir", "place: fsync of the folders"),
            (Placing, "settle", "ledger: the pass's transaction"),
            (Placing, "tidy", "place: the local shot removed"),
            (Intake, "admit", "intake: address files read, shots in the ledger"),
            (Collector, "collect", "collect: outcomes received"),
            (JobFinisher, "check", "finishing the job (CSVs, result JSON, DONE)"),
        ):
            timer.wrap(owner, name, stage)
        setattr(task, "load_routines", timed_routines)  # noqa: B010  (not exported)
        task._routines.clear()  # loaded again through the timed loader
        try:
            daemon = ResultDaemon(settings)
            try:
                assert daemon.executor.wait_ready(120)
                start = time.perf_counter()
                done = daemon.run_once()
                daemon_s = time.perf_counter() - start
            finally:
                daemon.close()
        finally:
            setattr(task, "load_routines", load_routines)  # noqa: B010
            task._routines.clear()
    assert done == shots, done
    table = [
        {"stage": stage, "ms_per_shot": ms, "share": share}
        for stage, ms, share in timer.table(daemon_s, shots)
    ]
    return {
        "shots": shots,
        "daemon_ms_per_shot": 1000 * daemon_s / shots,
        "plain_copy_ms_per_shot": 1000 * copy_s / shots,
        "stages": table,
    }


def finishing(root: Path, shots: int) -> dict[str, Any]:
    from lyse.dataframe_utilities import get_dataframe_from_shots

    from result.daemon import ResultDaemon

    settings = load_settings(write_tree(root / "finishing", "singlequdit"))
    running_job(settings, "big", shots)
    make_shots(settings, "big", shots, 0.05)
    # the CSVs and the result JSON, as lyse's DataFrame would give them: without the
    # multi-shot routines (the shipped picture adds ~0.5 s a job, whatever its size)
    settings = replace(settings, result=replace(settings.result, multishot_routines=()))
    daemon = ResultDaemon(with_executor(settings, ExecutorSettings(kind="inline")))
    timings: list[float] = []
    finish = daemon.finisher._finish

    def timed_finish(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        finish(*args, **kwargs)
        timings.append(time.perf_counter() - start)

    daemon.finisher._finish = timed_finish  # type: ignore[method-assign]
    try:
        daemon.run_once()
    finally:
        daemon.close()
    archived = sorted(str(p) for p in (settings.folders.sds / "big").glob("*/*.h5"))
    start = time.perf_counter()
    frame = get_dataframe_from_shots(archived)
    lyse_s = time.perf_counter() - start
    assert len(frame) == shots and len(timings) == 1
    return {
        "shots": shots,
        "finish_from_ledger_s": timings[0],
        "lyse_get_dataframe_from_shots_s": lyse_s,
        "lyse_over_ledger": lyse_s / timings[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shots", type=int, help=f"default {FULL['shots']}")
    parser.add_argument("--shot-mb", type=float, help=f"default {FULL['shot_mb']}")
    parser.add_argument("--big-job", type=int, help=f"default {FULL['big_job']}")
    parser.add_argument("--out", type=Path)
    args = parse_sized(parser, FULL, SMOKE)
    with tempfile.TemporaryDirectory(prefix="labspool-bench-result-") as tmp:
        root = Path(tmp)
        with labscript_sandbox(root):
            import lyse.dataframe_utilities  # noqa: F401  (the daemon imports it as it starts)

            results = {
                "throughput": throughput(
                    root, args.shots, args.shot_mb, ExecutorSettings(kind="processes", workers=2)
                ),
                "throughput_inline": throughput(
                    root, args.shots, args.shot_mb, ExecutorSettings(kind="inline")
                ),
                "finishing": finishing(root, args.big_job),
                "stages": stages(root, args.shots, args.shot_mb),
            }
    f = results["finishing"]
    for t in (results["throughput"], results["throughput_inline"]):
        print(
            f"{t['shots']} shots of {t['shot_mb']} MB, {t['executor']} ({t['workers']} "
            f"worker(s)): daemon {t['daemon_shots_per_s']:.1f} shots/s (analysed, archived, "
            f"verified, recorded); plain copy {t['plain_copy_shots_per_s']:.1f} shots/s; "
            f"ratio {t['daemon_over_plain_copy']:.3f}"
        )
    print(
        f"finishing a {f['shots']}-shot job: {f['finish_from_ledger_s']:.2f} s from the ledger; "
        "lyse get_dataframe_from_shots on the same shots "
        f"{f['lyse_get_dataframe_from_shots_s']:.2f} s ({f['lyse_over_ledger']:.1f}x)"
    )
    s = results["stages"]
    print(
        f"where a shot's time goes, inline: {s['daemon_ms_per_shot']:.1f} ms a shot "
        f"(a plain copy: {s['plain_copy_ms_per_shot']:.2f} ms)"
    )
    for row in s["stages"]:
        print(f"  {row['ms_per_shot']:7.2f} ms  {100 * row['share']:5.1f}%  {row['stage']}")
    return finish(args, results)


if __name__ == "__main__":
    sys.exit(main())
