#!/usr/bin/env python3
"""Benchmark of a year of jobs: what labspool's everyday operations cost on a tree that has
run for a year, as a ratio to the same operation on a tree of 1,000 jobs, in one run.

Every other benchmark measures a fresh tree. This one builds trees of ``--sizes`` finished
jobs (1,000, 10,000 and 100,000 by default) as a year leaves them, then measures each
operation on every tree, one tree after the other, before the next operation (the machine
is noisy: read the ratios, each against the smallest tree's figure of the same run).

What a tree holds, and how it is made (``labspool init``, then):

- a few real jobs per tree (``--sample-jobs``, 10 shots each of about 50 kB): runmanager
  run files and the BLACS plugin's own address files (``scripts/bench_result.py``'s
  ``make_shots``), taken in, analysed, archived and finished by the result daemon itself
  (inline executor). Their archived shots are the sample ``reprocess`` runs on, and their
  ledger row (lyse's DataFrame row, the memory entry) and result JSON the templates below;
- the year's jobs, spread over 365 days: 90% DONE (10 to 40 shots over 1 to 3 experiments),
  3% ERROR while running (shots stopped arriving after half of them), 3% refused at
  admission, 4% CANCELLED while queued; eight users of unequal weight, 5% without a user,
  and one user with exactly 10 jobs. Through the store's own named queries
  (``Transaction.add_job``, ``transition``, ``set_counts``, the experiments' queries and
  ``Ledger.claim`` / ``Ledger.archived`` for every shot), 500 jobs a transaction; the
  shortcut: the transaction's time (``tx.now``) is set job by job, so that one transaction
  writes jobs of different days (the ledger's own times are the build's, as
  ``Ledger.claim`` takes ``time.time()``);
- the files they leave: every status file rendered by the status file renderer
  (``StatusFiles.publish``, 500 jobs at a time); shortcuts, written as plain files (not
  atomically, no fsync), with the content labspool writes: each admitted job's folder
  (``jobs/<id>/job.json`` and one rendered script per experiment, the renderer's text of
  the first job), each refused job's file in ``rejected/``, a result JSON per DONE job
  (the real job's, its ``job_id`` replaced), and every shot's address file in
  ``processed/`` (what the plugin's ``shot_record`` says of it); the quarantine (an item
  per 1,000 jobs, two at least, half of the spooler's, half of the result daemon's) through
  ``Quarantine.put``. The synthetic shots themselves are absent (the ledger says where they
  were archived): only the real jobs' shots are on the store. The notices for people
  (ERROR, quarantine) are recorded sent, as the notifier leaves them.

Measured on each tree (``--burst`` first, so that the others meet a queue of that many):

- admitting a burst of new jobs (``Spooler.run_once``, ``lab.kind: none``, ``queue.policy:
  fair``), jobs/s;
- ``labspool status`` (all jobs, one job, ``--json``) and ``labspool move`` (a queued job to
  the front, then the back);
- the gateway (starlette's TestClient): ``get_job_status`` and ``get_job_result`` of a DONE
  job, the live page's overview and a job's page, for an operator and for the user with 10
  jobs;
- the estimates of every waiting and running job (``estimate_jobs``) and one backend's model
  (``duration_model``); the fair-share key of a new job (``fair_key``);
- the result daemon: one shot taken, analysed (inline), placed, recorded and its address
  filed (``ResultDaemon.run_once`` after the address file arrives); finishing a job of
  ``--finish-shots`` shots from the ledger (``JobFinisher.check``: CSV, result JSON, DONE;
  without the multi-shot routines, as ``bench_result.py``);
- ``labspool-result reprocess --all``: what it reads (the jobs with archived shots, a
  window at a time, and each job's shots to analyse, as ``Reprocessor.run`` reads them while
  it analyses) in a process of its own, nothing analysed: the selection's time, the time to
  the first shot, the shots of at most 10,000 jobs read (the time for all extrapolated; the
  peak RSS measured: one job's shots are held at a time), the most shots held at once; and
  ``labspool-result reprocess --force`` of the real jobs (a bounded sample: ``--all`` would
  analyse every shot of the year), shots/s and peak RSS;
- the start-up of each daemon (the lock, the stale temporary files' scan, unpublished
  status files rendered, recovery, the watched folders' listing).

With ``--profile``, every operation whose figure on the largest tree is more than 1.5
times the smallest's (``--profile-above``) is run once more there under cProfile, and the
job store's statements it ran are counted by shape, the costliest timed again with their
query plans; both are printed and kept in the JSON (``--out``). Runs in a throw-away
labscript profile with a zlock server of its own (stopped by pid), under one temporary
folder, removed at the end. ``--smoke`` runs it all on trees of 100 and 300 jobs (to check
that it runs, not to measure). ``--json`` is another name of ``--out``. ``--only start-up``
measures only the operations whose names contain one of the given words (the trees are
built all the same; reprocess is left out).

    python scripts/bench_year.py [--sizes 1000,10000,100000] [--burst 1000]
                                 [--finish-shots 500] [--sample-jobs 4]
                                 [--profile [--profile-above 1.5]] [--out FILE]
                                 [--only start-up]
    python scripts/bench_year.py --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from unittest import mock

from bench_intake import typical_job
from benchkit import finish, labscript_sandbox, parse_sized

from spooler.cli.main import main as labspool
from spooler.core.settings import ExecutorSettings, Folders, Settings, load_settings
from spooler.core.states import JobState
from spooler.core.store import JobStore, Transaction
from spooler.core.store.notifications import NotificationRows
from spooler.core.store.shots import Ledger

FULL = {"sizes": "1000,10000,100000", "burst": 1000, "finish_shots": 500, "sample_jobs": 4}
SMOKE = {"sizes": "100,300", "burst": 50, "finish_shots": 50, "sample_jobs": 2}

BACKEND = "singlequdit"
YEAR_S = 365 * 86400.0
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
WEIGHTS = (40, 20, 12, 8, 8, 6, 4, 2)
TEN = "tenjobs"  # the user with exactly 10 jobs
OPERATOR = "root"
CHUNK = 500  # jobs a transaction while building
SAMPLE_SHOTS = 10  # shots of each real job
ONE_SHOT_REPS = 3
HELD_SHOTS = 2 * (1 + ONE_SHOT_REPS)  # one shot at a time: a warm-up, then measured; profiled
FINISH_REPS = 2
FINISH_JOBS = 2 * (1 + FINISH_REPS)  # a warm-up, then measured; profiled
PLAN_JOBS = 10_000  # reprocess --all's plan reads the shots of at most this many jobs
RATIO_PROFILED = 1.5
API = f"/api/v2/{BACKEND}"
REPO = Path(__file__).resolve().parents[1]


# -- the year's tree ------------------------------------------------------------------------


@dataclass
class Templates:
    """What the real jobs left, copied into the synthetic ones."""

    frame: bytes
    memory: str | None
    routines: str | None
    result: dict[str, Any]
    scripts: dict[str, str]  # rendered experiment scripts, by experiment name
    address: dict[str, Any]

    def archived_shot(
        self, tx: Transaction, folders: Folders, job_id: str, experiment: str, index: int, name: str
    ) -> Path:
        """A shot's ledger row as the result daemon leaves it archived, with the real jobs'
        analysis; returns the shot's local path (gone: archived)."""
        address = f"{job_id}__{experiment}__{index:05d}.json"
        local = folders.shot_folder(job_id, 1, experiment) / name
        Ledger.claim(
            tx,
            address,
            job_id=job_id,
            attempt=1,
            experiment=experiment,
            shot_index=index,
            local_path=str(local),
        )
        Ledger.archived(
            tx,
            address,
            sds_path=str(folders.stored_shot(job_id, experiment, name)),
            size=52_000,
            sha256="0" * 64,
            frame=self.frame,
            memory=self.memory,
            error=None,
            routines=self.routines,
        )
        return local


@dataclass
class Tree:
    size: int
    root: Path
    config: Path
    settings: Settings  # lab none, executor inline, no multi-shot routines
    tokens: dict[str, str]
    user_job: str = ""  # a DONE job of TEN
    real_jobs: list[str] = field(default_factory=list)
    finish_jobs: list[str] = field(default_factory=list)
    held: list[Path] = field(default_factory=list)  # address files of the one-shot figure
    shots: int = 0  # ledger rows archived
    build_s: float = 0.0
    database_mb: float = 0.0
    burst_round: int = 0


def new_tree(root: Path) -> tuple[Path, Settings]:
    """``labspool init``, with ``queue.policy: fair``; the settings as the benchmark runs the
    daemons in this process (inline analysis, no multi-shot routines)."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        labspool(["init", str(root), "--backend", BACKEND])
    config = Path(out.getvalue().strip())
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("policy: fifo", "policy: fair", 1), encoding="utf-8")
    settings = load_settings(config)
    assert settings.lab.kind == "none" and settings.queue.policy == "fair"
    result = replace(
        settings.result, executor=ExecutorSettings(kind="inline"), multishot_routines=()
    )
    return config, replace(settings, result=result)


def add_users(settings: Settings) -> dict[str, str]:
    from spooler.gateway.users import Users

    store = JobStore(settings.folders.database)
    try:
        users = Users(store, settings)
        names = [*USERS, TEN, OPERATOR]
        return {
            name: users.add(name, operator=name == OPERATOR, requests_per_s=100_000.0)[1]
            for name in names
        }
    finally:
        store.close()


def running_job(
    store: JobStore,
    job_id: str,
    user: str | None,
    experiments: dict[str, int],
    *,
    engaged: bool = True,
) -> None:
    """A job engaged on the lab (every experiment submitted and, if *engaged*, confirmed by
    the lab), as the spooler leaves it."""
    with store.transaction() as tx:
        name = f"file_{job_id}-{user}.json" if user else f"{job_id}.json"
        tx.add_job(
            job_id=job_id, backend=BACKEND, source_name=name, claim_name=name, submitter=user
        )
        tx.set_counts(
            job_id, experiments=len(experiments), shots_requested=sum(experiments.values())
        )
        for experiment, shots in experiments.items():
            tx.add_experiment(job_id, 1, experiment, shots)
        tx.transition(job_id, JobState.QUEUED)
        tx.clear_claim(job_id)
        tx.transition(job_id, JobState.RUNNING)
        for experiment, shots in experiments.items():
            tx.experiment_submitted(job_id, 1, experiment, shots)
            if engaged:
                tx.experiment_engaged(job_id, 1, experiment)
        tx.set_counts(job_id, shots_expected=sum(experiments.values()))


def real_jobs(tree: Tree, count: int) -> Templates:
    """*count* jobs of real shots, finished by the result daemon; what they left."""
    from bench_result import EXPERIMENT, make_shots

    from result.daemon import ResultDaemon
    from spooler.pipeline.render import Renderer
    from spooler.pipeline.validation import JobValidator

    store = JobStore(tree.settings.folders.database)
    try:
        for n in range(count):
            job_id = f"real{n:02d}"
            running_job(store, job_id, USERS[n % len(USERS)], {EXPERIMENT: SAMPLE_SHOTS})
            make_shots(tree.settings, job_id, SAMPLE_SHOTS, 0.05)
            tree.real_jobs.append(job_id)
    finally:
        store.close()
    daemon = ResultDaemon(tree.settings)
    try:
        daemon.run_once()
        states = {daemon.jobs.read.require(j).state for j in tree.real_jobs}
        row = Ledger.of_job(daemon.jobs.read, tree.real_jobs[0], 1)[0]
    finally:
        daemon.close()
    assert states == {JobState.DONE}, states
    assert row.frame is not None
    tree.shots += count * SAMPLE_SHOTS
    processed = sorted(tree.settings.folders.processed.iterdir())
    from spooler.core.backends import get_backend

    backend = get_backend(BACKEND)
    job = JobValidator(backend, tree.settings.limits).validate_bytes(
        json.dumps(typical_job(random.Random(0))).encode()
    )
    renderer = Renderer(backend, tree.settings.apparatus.header, tree.settings.apparatus.object)
    result = json.loads((tree.settings.folders.results / f"{tree.real_jobs[0]}.json").read_text())
    return Templates(
        frame=row.frame,
        memory=row.memory,
        routines=row.routines,
        result=result,
        scripts={e.name: renderer.render(e) for e in job.experiments},
        address=json.loads(processed[0].read_text()),
    )


class Writer:
    """Plain files, written as fast as Python can (the shortcut of the module's text)."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        self.count += 1


@dataclass
class Year:
    """One tree's year of jobs being written."""

    tree: Tree
    templates: Templates
    rng: random.Random
    start: float
    files: Writer = field(default_factory=Writer)
    job_text: bytes = b""
    done: dict[str | None, str] = field(default_factory=dict)  # a DONE job of each user
    quarantine: list[tuple[str, str]] = field(default_factory=list)  # (kind, job)

    def fate(self, i: int) -> tuple[str | None, JobState, bool]:
        """The user of the year's *i*-th job, how it ended and whether it was refused."""
        rng, n = self.rng, self.tree.size
        ten_every = max(n // 10, 1)
        user: str | None
        if i % ten_every == ten_every // 2 and i // ten_every < 10:  # 10 jobs, over the year
            user = TEN
        elif rng.random() < 0.05:
            user = None
        else:
            user = rng.choices(USERS, WEIGHTS)[0]
        roll = rng.random()
        if roll < 0.03:
            return user, JobState.ERROR, True
        if roll < 0.06:
            return user, JobState.ERROR, False
        if roll < 0.10:
            return user, JobState.CANCELLED, False
        return user, JobState.DONE, False

    def job(self, tx: Transaction, i: int) -> None:
        job_id = f"y{i:06d}"
        user, end, refused = self.fate(i)
        folders = self.tree.settings.folders
        tx.now = self.start + YEAR_S * i / self.tree.size
        name = f"file_{job_id}-{user}.json" if user else f"{job_id}.json"
        tx.add_job(
            job_id=job_id, backend=BACKEND, source_name=name, claim_name=name, submitter=user
        )
        if refused:
            tx.transition(
                job_id,
                JobState.ERROR,
                note="Rejected: experiment_0: instruction 3: rlx needs 1 parameter",
                error_message="experiment_0: instruction 3: rlx needs 1 parameter",
            )
            tx.clear_claim(job_id)
            self.files.write(folders.rejected / f"{job_id}.json", self.job_text)
            return
        total, parts = self.rng.randint(10, 40), self.rng.randint(1, 3)
        shots = {f"experiment_{k}": total // parts + (k < total % parts) for k in range(parts)}
        tx.set_counts(job_id, experiments=len(shots), shots_requested=total)
        for experiment, count in shots.items():
            tx.add_experiment(job_id, 1, experiment, count)
        tx.transition(job_id, JobState.QUEUED, note="Queued")
        tx.clear_claim(job_id)
        self.job_folder(job_id, shots)
        if end is JobState.CANCELLED:
            tx.now += 60.0
            tx.transition(job_id, JobState.CANCELLED, note=f"Cancelled by {OPERATOR}")
            return
        tx.now += 30.0
        tx.transition(job_id, JobState.RUNNING, note="Engaged on the lab")
        for experiment, count in shots.items():
            tx.experiment_submitted(job_id, 1, experiment, count)
            tx.experiment_engaged(job_id, 1, experiment)
        tx.set_counts(job_id, shots_expected=total)
        made = total if end is JobState.DONE else total // 2
        tx.now += 5.0
        tx.set_counts(job_id, shots_made=1)
        self.shots(tx, job_id, shots, made)
        tx.now += 0.5 * made
        tx.set_counts(job_id, shots_made=made, shots_done=made)
        tx.now += 2.0
        if end is JobState.DONE:
            tx.transition(job_id, JobState.DONE, note=f"Done: {made} shot(s) analysed")
            result = {**self.templates.result, "job_id": job_id}
            self.files.write(folders.results / f"{job_id}.json", json.dumps(result).encode())
            self.done[user] = job_id
        else:
            tx.transition(
                job_id,
                JobState.ERROR,
                note="Shots stopped arriving",
                error_message=f"no shot arrived for 600 s; missing: {total - made}",
            )
        every = self.tree.size // max(self.tree.size // 1000, 2)  # one a 1,000 jobs, 2 at least
        if i % every == every // 2:
            self.quarantine.append(("result", job_id))
        elif i % every == 0:
            self.quarantine.append(("spooler", job_id))

    def job_folder(self, job_id: str, shots: dict[str, int]) -> None:
        folder = self.tree.settings.folders.jobs / job_id
        folder.mkdir()
        self.files.write(folder / "job.json", self.job_text)
        scripts = list(self.templates.scripts.values())
        for k, experiment in enumerate(shots):
            self.files.write(folder / f"{experiment}.py", scripts[k % len(scripts)].encode())

    def shots(self, tx: Transaction, job_id: str, shots: dict[str, int], made: int) -> None:
        folders, t = self.tree.settings.folders, self.templates
        left = made
        for experiment, count in shots.items():
            sequence = f"20260101T000000_{experiment}"
            for index in range(min(count, left)):
                address = f"{job_id}__{experiment}__{index:05d}.json"
                name = f"{sequence}_{index:02d}.h5"
                local = t.archived_shot(tx, folders, job_id, experiment, index, name)
                record = {
                    **t.address,
                    "shot": str(local),
                    "job_id": job_id,
                    "experiment": experiment,
                    "shot_index": index,
                }
                self.files.write(
                    folders.processed / address, (json.dumps(record, indent=1) + "\n").encode()
                )
                self.tree.shots += 1
            left -= min(count, left)


def build_year(tree: Tree, templates: Templates, seed: int) -> None:
    """The year's jobs of :class:`Year` into *tree* (see the module's text)."""
    from spooler.core.items import Quarantine
    from spooler.core.statusfile import StatusFiles

    year = Year(tree, templates, random.Random(seed), time.time() - YEAR_S)
    year.job_text = json.dumps(typical_job(random.Random(seed))).encode()
    folders = tree.settings.folders
    store = JobStore(folders.database)
    status = StatusFiles(folders.status)
    try:
        for first in range(0, tree.size, CHUNK):
            ids = [f"y{i:06d}" for i in range(first, min(first + CHUNK, tree.size))]
            with store.transaction() as tx:
                for i in range(first, first + len(ids)):
                    year.job(tx, i)
            with status.locked(), store.snapshot() as reader:
                status.publish(reader, ids)
        for kind, job_id in year.quarantine:
            quarantine = Quarantine(folders.quarantine, f"{kind} daemon", store=store)
            if kind == "result":
                address = folders.processed / f"{job_id}__experiment_0__00000.json"
                shutil.copyfile(address, folders.result_claimed / address.name)
                quarantine.put(
                    folders.result_claimed / address.name,
                    "the shot is not an HDF5 file (damaged)",
                    job_id=job_id,
                )
            else:
                claimed = folders.claimed / f"{job_id}-again.json"
                claimed.write_bytes(b"{" * 10_000)
                quarantine.put(claimed, "the spooler died 3 times on this job file")
        with store.transaction() as tx:  # the notices were sent, as the notifier leaves them
            while due := NotificationRows.due(tx, time.time() + 1e6, 10_000):
                NotificationRows.sent(tx, (n.id for n in due))
    finally:
        store.close()
    tree.user_job = year.done[TEN]


def measured_jobs(tree: Tree, templates: Templates, finish_shots: int) -> None:
    """The jobs the result daemon's figures need: one that runs long (its shots held back,
    fed one at a time), and :data:`FINISH_JOBS` of *finish_shots* archived shots each,
    complete but not yet confirmed engaged (so that no pass of the daemon finishes them
    before they are measured)."""
    from bench_result import EXPERIMENT, make_shots

    folders = tree.settings.folders
    store = JobStore(folders.database)
    try:
        running_job(store, "live", "alice", {EXPERIMENT: 1_000_000})
        for n in range(FINISH_JOBS):
            job_id = f"finish{n}"
            running_job(store, job_id, "bob", {EXPERIMENT: finish_shots}, engaged=False)
            with store.transaction() as tx:
                for index in range(finish_shots):
                    name = f"seq_{index:04d}.h5"
                    templates.archived_shot(tx, folders, job_id, EXPERIMENT, index, name)
                tx.set_counts(job_id, shots_made=finish_shots, shots_done=finish_shots)
            tree.finish_jobs.append(job_id)
    finally:
        store.close()
    make_shots(tree.settings, "live", HELD_SHOTS, 0.05)
    held = folders.state / "bench-held"
    held.mkdir()
    for path in sorted(folders.addresses.iterdir()):
        os.rename(path, held / path.name)
        tree.held.append(held / path.name)


def build(root: Path, size: int, args: argparse.Namespace) -> Tree:
    start = time.perf_counter()
    config, settings = new_tree(root / f"year-{size}")
    tree = Tree(size, root / f"year-{size}", config, settings, add_users(settings))
    templates = real_jobs(tree, args.sample_jobs)
    build_year(tree, templates, args.seed)
    measured_jobs(tree, templates, args.finish_shots)
    tree.build_s = time.perf_counter() - start
    database = settings.folders.database
    tree.database_mb = (
        sum(p.stat().st_size for p in database.parent.glob(f"{database.name}*")) / 2**20
    )
    print(
        f"built a year of {size} jobs ({tree.shots} shots in the ledger, a database of "
        f"{tree.database_mb:.0f} MB) in {tree.build_s:.0f} s",
        flush=True,
    )
    return tree


# -- the operations -------------------------------------------------------------------------

Run = Callable[[], object]


class Timed(float):
    """What a call returns when it timed what matters itself (its set-up left out)."""


@dataclass(frozen=True)
class Operation:
    name: str
    unit: str  # "s", or a rate ("jobs/s", "shots/s"): then higher is better
    prepare: Callable[[Tree], contextlib.AbstractContextManager[Run]]
    reps: int = 5
    budget_s: float = 3.0  # stop repeating once this much time was spent
    per_call: int = 1  # for a rate: items a call does
    rounds: int = 1  # each tree measured this many times, one tree after the other: the best
    # what the profile runs instead of prepare (a handler the gateway runs in another thread)
    direct: Callable[[Tree], contextlib.AbstractContextManager[Run]] | None = None


def quiet(argv: list[str]) -> Run:
    def run() -> object:
        with contextlib.redirect_stdout(io.StringIO()):
            code = labspool(argv)
        assert code == 0, argv
        return code

    return run


@contextlib.contextmanager
def cli(tree: Tree, *argv: str) -> Iterator[Run]:
    yield quiet(["--config", str(tree.config), *argv])


@contextlib.contextmanager
def burst(tree: Tree, count: int) -> Iterator[Run]:
    """*count* new jobs of the users in the dump folder; the spooler started before."""
    from spooler.pipeline.daemon import Spooler

    tree.burst_round += 1
    folders = tree.settings.folders
    rng = random.Random(tree.burst_round)
    for n in range(count):
        user = rng.choices(USERS, WEIGHTS)[0]
        name = f"file_b{tree.burst_round}x{n:05d}-{user}.json"
        staged = folders.staging / name
        staged.write_bytes(json.dumps(typical_job(rng)).encode())
        os.rename(staged, folders.dump / name)
    spooler = Spooler(tree.settings)
    try:
        spooler.start()

        def run() -> object:
            report = spooler.run_once()
            assert report.admitted == count, report.admitted
            return report

        yield run
    finally:
        spooler.close()


@contextlib.contextmanager
def spooler_start(tree: Tree) -> Iterator[Run]:
    from spooler.pipeline.daemon import Spooler

    def run() -> object:
        spooler = Spooler(tree.settings)
        try:
            spooler.start()
        finally:
            spooler.close()
        return spooler

    yield run


@contextlib.contextmanager
def result_start(tree: Tree) -> Iterator[Run]:
    from result.daemon import ResultDaemon

    def run() -> object:
        daemon = ResultDaemon(tree.settings)
        try:
            daemon._look(now=True)
        finally:
            daemon.close()
        return daemon

    yield run


@contextlib.contextmanager
def gateway(tree: Tree, call: Callable[[Any, Tree], Any]) -> Iterator[Run]:
    from starlette.testclient import TestClient

    from spooler.gateway.app import make_app

    with TestClient(make_app(tree.settings)) as client:

        def run() -> object:
            answer = call(client, tree)
            assert answer.status_code == 200, (answer.status_code, answer.text[:300])
            return answer

        run()  # the first request opens what the gateway keeps open
        yield run


@contextlib.contextmanager
def page_handler(tree: Tree, path: str, user: str) -> Iterator[Run]:
    """The live page's handler of *path* called in this thread (as tests/gateway/
    test_page_scale.py does), for the profile: the TestClient runs it in another."""
    import asyncio

    from starlette.requests import Request

    from spooler.gateway.page import LivePage
    from spooler.gateway.users import User

    store = JobStore(tree.settings.folders.database)
    loop = asyncio.new_event_loop()

    def caller(source: Any) -> User:
        name = str(source["username"])
        return User(name, name == OPERATOR, 10**6, 1 << 30, 1e9)

    live = LivePage(tree.settings, store, caller)
    scope = {
        "type": "http",
        "method": "GET",
        "path": path.replace("JOB", tree.user_job),
        "headers": [(b"authorization", f"Bearer {user}:token".encode())],
        "query_string": b"",
        "path_params": {"job_id": tree.user_job},
    }
    handler = live.job if "JOB" in path else live.overview
    try:

        def run() -> object:
            answer = loop.run_until_complete(handler(Request(scope)))
            assert answer.status_code == 200, answer.status_code
            return answer

        yield run
    finally:
        loop.close()
        store.close()


def api(endpoint: str, user: str) -> Callable[[Any, Tree], Any]:
    def call(client: Any, tree: Tree) -> Any:
        params = {"job_id": tree.user_job, "username": user, "token": tree.tokens[user]}
        return client.get(f"{API}/{endpoint}", params=params)

    return call


def page(path: str, user: str) -> Callable[[Any, Tree], Any]:
    def call(client: Any, tree: Tree) -> Any:
        where = path.replace("JOB", tree.user_job)
        headers = {"authorization": f"Bearer {user}:{tree.tokens[user]}"}
        return client.get(where, headers=headers)

    return call


@contextlib.contextmanager
def reading(tree: Tree, what: Callable[[Any], object]) -> Iterator[Run]:
    store = JobStore(tree.settings.folders.database)
    try:

        def run() -> object:
            with store.snapshot() as reader:
                return what(reader)

        yield run
    finally:
        store.close()


def estimates_all(reader: Any) -> object:
    from spooler.core.estimates import estimate_jobs

    return estimate_jobs(reader, time.time())


def duration_model(reader: Any) -> object:
    from spooler.core.estimates import duration_model

    model = duration_model(reader, BACKEND)
    assert model is not None
    return model


def fair_key(reader: Any) -> object:
    from spooler.pipeline.fairshare import fair_key

    return fair_key(reader, "bob", "not-yet-queued")


@contextlib.contextmanager
def move(tree: Tree) -> Iterator[Run]:
    store = JobStore(tree.settings.folders.database)
    try:
        queue = store.read.queue()
    finally:
        store.close()
    job_id = queue[len(queue) // 2].job_id
    where = iter(["--front", "--back"] * 100)

    def run() -> object:
        return quiet(["--config", str(tree.config), "move", job_id, next(where)])()

    yield run


@contextlib.contextmanager
def one_shot(tree: Tree) -> Iterator[Run]:
    """The result daemon, started; each call gives it the next held address file and makes
    one pass over it (taken in, analysed inline, placed, recorded, filed)."""
    from result.daemon import ResultDaemon

    daemon = ResultDaemon(tree.settings)
    addresses = tree.settings.folders.addresses
    try:

        def run() -> object:
            held = tree.held.pop(0)
            os.rename(held, addresses / held.name)
            done = daemon.run_once()
            assert done == 1, done
            return done

        run()  # the warm-up: the first shot imports lyse
        yield run
    finally:
        daemon.close()


@contextlib.contextmanager
def finishing(tree: Tree) -> Iterator[Run]:
    from result.finishing import JobFinisher
    from spooler.core.backends import get_backend
    from spooler.core.jobs import Jobs

    jobs = Jobs(tree.settings.folders)
    finisher = JobFinisher(tree.settings, jobs, get_backend(BACKEND))
    try:

        def run() -> Timed:
            job_id = tree.finish_jobs.pop(0)
            with jobs.change() as tx:  # the lab confirms the job: untimed
                for experiment in tx.experiments(job_id, 1):
                    tx.experiment_engaged(job_id, 1, experiment.name)
            start = time.perf_counter()
            finisher.check(jobs.read.require(job_id))
            seconds = Timed(time.perf_counter() - start)
            assert jobs.read.require(job_id).state is JobState.DONE
            return seconds

        run()  # the warm-up: the first finishing imports and caches what the others reuse
        yield run
    finally:
        jobs.close()


def reprocess_plan(config: Path, bound: int, profile: bool) -> dict[str, Any]:
    """What ``labspool-result reprocess --all`` reads, as ``Reprocessor`` reads it, nothing
    written: the jobs with archived shots counted (``Reprocessor.selected_count``), then
    selected a window at a time to the end (``Reprocessor.selected``: ``Reprocessing.jobs_after``
    from where the last window ended), and the shots to analyse of each of the first *bound*
    jobs (``Ledger.to_reanalyse``), one job's let go before the next's are read, as ``run``
    lets a job's go once they are analysed. Times: the selection whole (the count and every
    window); to the first shot (the count, the first window and the first job's shots: when
    the analysis can start); the plan (the selection and every job's shots read, the reading
    extrapolated from the *bound* jobs'). Memory: the peak RSS, measured (not extrapolated:
    it holds one window of job names and one job's shots at a time), and the most shots held
    at once (``run`` holds those and the executor's capacity in flight). With *profile*,
    where its time goes."""
    from result.reprocess import WINDOW_JOBS
    from spooler.core.states import FINISHED
    from spooler.core.store.reprocessing import Reprocessing

    settings = load_settings(config)
    profiler = cProfile.Profile()
    with statements() as seen:
        store = JobStore(settings.folders.database)
    seen.clear()
    first_s: float | None = None
    planned = rows = held = 0
    select_s = rows_s = 0.0
    try:
        if profile:
            profiler.enable()
        start = time.perf_counter()
        read = store.read
        jobs = Reprocessing.jobs_count(read)
        select_s = time.perf_counter() - start
        after = 0
        while True:
            began = time.perf_counter()
            window = Reprocessing.jobs_after(read, after, WINDOW_JOBS)
            select_s += time.perf_counter() - began
            began = time.perf_counter()
            for _, job_id in window[: max(0, bound - planned)]:
                planned += 1
                job = read.require(job_id)
                if job.state not in FINISHED:
                    continue
                todo = [r for r in Ledger.to_reanalyse(read, job_id, job.attempt) if r.sds_path]
                rows, held = rows + len(todo), max(held, len(todo))
                if first_s is None and todo:
                    first_s = time.perf_counter() - start
                del todo
            rows_s += time.perf_counter() - began
            if len(window) < WINDOW_JOBS:
                break
            after = window[-1][0]
        profiler.disable()
        rss_mb = peak_rss_mb()
    finally:
        store.close()
    share = jobs / max(planned, 1)
    where = stats_lines(profiler, 20) if profile else []
    return {
        "profile": statements_report(seen, settings.folders.database) + where if profile else [],
        "jobs": jobs,
        "jobs_planned": planned,
        "rows_planned": rows,
        "select_s": select_s,
        "first_shot_s": first_s if first_s is not None else select_s,
        "plan_s_all": select_s + rows_s * share,
        "rows_all": round(rows * share),
        "rows_held_max": held,
        "rss_mb_all": rss_mb,
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: of this program, unlike ``getrusage``,
    which counts the memory of the process that started it before its ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reprocess_child(config: str, job_ids: list[str]) -> int:
    """``labspool-result reprocess --force`` of *job_ids* in this process, then its peak RSS
    on the last line."""
    from result.cli import main as labspool_result

    code = labspool_result(["--config", config, "reprocess", "--force", *job_ids])
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
    return code


def child(argv: list[str]) -> tuple[float, str]:
    """Run *argv*; its wall time and standard output."""
    start = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    wall_s = time.perf_counter() - start
    assert run.returncode == 0, (argv, run.stdout[-2000:], run.stderr[-2000:])
    return wall_s, run.stdout


@dataclass
class Extra:
    """Figures of the trees measured in processes of their own: name -> (unit, by size)."""

    figures: dict[str, tuple[str, dict[int, float]]] = field(default_factory=dict)

    def put(self, name: str, unit: str, size: int, value: float) -> None:
        self.figures.setdefault(name, (unit, {}))[1][size] = value


def reprocess(trees: list[Tree], extra: Extra, profile: bool) -> list[str]:
    """``reprocess --all``'s plan in a process of its own; ``reprocess --force`` of the real
    jobs (the sample) as the operator runs it (the peak RSS: of its own process, not of its
    workers). Returns where the plan's time goes on the largest tree, with *profile*."""
    where: list[str] = []
    for tree in trees:
        profiling = profile and tree is trees[-1]
        argv = [sys.executable, __file__, "--reprocess-plan", str(tree.config), str(PLAN_JOBS)]
        _, out = child([*argv, "profile"] if profiling else argv)
        plan = json.loads(out)
        where = plan["profile"] or where
        extra.put("reprocess --all: select the jobs", "s", tree.size, plan["select_s"])
        extra.put("reprocess --all: to the first shot", "s", tree.size, plan["first_shot_s"])
        extra.put("reprocess --all: plan (select, read rows)", "s", tree.size, plan["plan_s_all"])
        extra.put("reprocess --all: plan's peak RSS", "MB", tree.size, plan["rss_mb_all"])
        extra.put("reprocess --all: shots to analyse", "shots", tree.size, plan["rows_all"])
        extra.put("reprocess --all: shots held at most", "shots", tree.size, plan["rows_held_max"])
    for tree in trees:
        argv = [sys.executable, __file__, "--reprocess-child", str(tree.config)]
        wall_s, out = child([*argv, *tree.real_jobs])
        shots = len(tree.real_jobs) * SAMPLE_SHOTS
        assert f"reprocessed {shots} shot(s)" in out, out
        rss = json.loads(out.splitlines()[-1])["peak_rss_mb"]
        extra.put("reprocess --force, the sample", "shots/s", tree.size, shots / wall_s)
        extra.put("reprocess --force, the sample: peak RSS", "MB", tree.size, rss)
    return where


def operations(args: argparse.Namespace) -> list[Operation]:
    def gate(name: str, call: Callable[[Any, Tree], Any]) -> Operation:
        return Operation(name, "s", lambda t: gateway(t, call), reps=20, budget_s=2.0)

    def live(name: str, path: str, user: str) -> Operation:
        return replace(gate(name, page(path, user)), direct=lambda t: page_handler(t, path, user))

    def read(name: str, what: Callable[[Any], object]) -> Operation:
        return Operation(name, "s", lambda t: reading(t, what), reps=20, budget_s=2.0)

    return [
        Operation(
            f"admit a burst of {args.burst} jobs",
            "jobs/s",
            lambda t: burst(t, args.burst),
            reps=1,
            per_call=args.burst,
            rounds=2,
        ),
        Operation("spooler start-up", "s", spooler_start, reps=3, budget_s=5.0),
        Operation("result daemon start-up", "s", result_start, reps=3, budget_s=5.0),
        Operation("labspool status", "s", lambda t: cli(t, "status"), reps=3, budget_s=5.0),
        Operation(
            "labspool status JOB",
            "s",
            lambda t: cli(t, "status", t.user_job),
            reps=10,
            budget_s=2.0,
        ),
        Operation(
            "labspool status --json",
            "s",
            lambda t: cli(t, "status", "--json"),
            reps=3,
            budget_s=5.0,
        ),
        Operation("labspool move", "s", move, reps=6, budget_s=5.0),
        gate("get_job_status", api("get_job_status", TEN)),
        gate("get_job_result", api("get_job_result", TEN)),
        live("page overview, operator", "/ui/overview", OPERATOR),
        live(f"page overview, {TEN}", "/ui/overview", TEN),
        live("page job, operator", "/ui/jobs/JOB", OPERATOR),
        live(f"page job, {TEN}", "/ui/jobs/JOB", TEN),
        read("estimates of the queue", estimates_all),
        read("duration model", duration_model),
        read("fair-share key of a new job", fair_key),
        # (finishing first: no pass of the daemon may meet its jobs complete before)
        Operation(
            f"finishing a {args.finish_shots}-shot job",
            "s",
            finishing,
            reps=FINISH_REPS,
            budget_s=60.0,
        ),
        Operation(
            "result daemon: one shot", "shots/s", one_shot, reps=ONE_SHOT_REPS, budget_s=60.0
        ),
    ]


def measure(op: Operation, tree: Tree) -> float:
    samples: list[float] = []
    with op.prepare(tree) as run:
        spent = time.perf_counter()
        while len(samples) < op.reps:
            start = time.perf_counter()
            timed = run()
            wall = time.perf_counter() - start
            samples.append(timed if isinstance(timed, Timed) else wall)
            if time.perf_counter() - spent > op.budget_s:
                break
    seconds = statistics.median(samples)
    return seconds if op.unit == "s" else op.per_call / seconds


def slowdown(unit: str, small: float, large: float) -> float:
    """How many times worse *large* is than *small* (rates: fewer a second; anything else,
    times and sizes: more)."""
    return small / large if unit.endswith("/s") else large / small


def profiled(op: Operation, tree: Tree, top: int = 25) -> list[str]:
    """Where the operation spends its time on *tree*: the statements of the job store it
    ran (:func:`statements_report`), then its functions by their own time, then by the time
    spent in them and what they called."""
    profiler = cProfile.Profile()
    with statements() as seen, (op.direct or op.prepare)(tree) as run:
        seen.clear()  # those of the set-up
        profiler.enable()
        run()
        profiler.disable()
        ran = list(seen)
    lines = statements_report(ran, tree.settings.folders.database)
    return lines + stats_lines(profiler, top)


def stats_lines(profiler: cProfile.Profile, top: int) -> list[str]:
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return [line.rstrip() for line in text.getvalue().splitlines() if line.strip()]


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """Every statement that the connections opened in the block run (their parameters
    bound), in any thread."""
    seen: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db: sqlite3.Connection = connect(*args, **kwargs)
        db.set_trace_callback(seen.append)
        return db

    with mock.patch.object(sqlite3, "connect", traced):
        yield seen


_COLUMNS = re.compile(r"SELECT [^()]{60,}? FROM")  # a long list of columns, not shown
_LITERAL = re.compile(r"'(?:[^']|'')*'|\b-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\b")


def statements_report(ran: list[str], database: Path, top: int = 6, sample: int = 20) -> list[str]:
    """The queries that cost most of those *ran*: each shape (its literals made ``?``)
    counted, up to *sample* of its statements run again on a read-only connection and
    timed, the total estimated; the *top* of them with SQLite's plan of one."""
    shapes: dict[str, list[str]] = {}
    for sql in ran:
        if sql.lstrip().upper().startswith(("SELECT", "WITH")):
            shapes.setdefault(_LITERAL.sub("?", sql), []).append(sql)
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        costs = []
        for shape, instances in shapes.items():
            start = time.perf_counter()
            try:
                for sql in instances[:sample]:
                    db.execute(sql).fetchall()
            except sqlite3.Error:  # of a table the store made since (not timed)
                continue
            each = (time.perf_counter() - start) / min(len(instances), sample)
            costs.append((each * len(instances), len(instances), shape, instances[0]))
        costs.sort(reverse=True)
        lines = [f"statements: {len(ran)} ({len(shapes)} shapes of query); the costliest:"]
        for total, count, shape, first in costs[:top]:
            plan = " / ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {first}"))
            shown = _COLUMNS.sub(r"SELECT ... FROM", shape)
            lines.append(f"  {total * 1e3:9.1f} ms  {count:7d}x  {shown[:400]}")
            lines.append(f"               plan: {plan[:400]}")
    finally:
        db.close()
    return lines


# -- the report -----------------------------------------------------------------------------


def table(figures: dict[str, dict[str, Any]], sizes: list[int]) -> str:
    head = ["operation", "unit", *(f"{s:,}" for s in sizes), *(f"x{s:,}" for s in sizes[1:])]
    rows = [head]
    for name, figure in figures.items():
        values = [figure["values"][str(s)] for s in sizes]
        rows.append(
            [
                name,
                figure["unit"],
                *(_number(v) for v in values),
                *(f"{figure['ratios'][str(s)]:.2f}" for s in sizes[1:]),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value * 1e3:.2f}m" if value < 0.1 else f"{value:.3f}"


def figure(unit: str, values: dict[int, float], sizes: list[int]) -> dict[str, Any]:
    small = values[sizes[0]]
    return {
        "unit": unit,
        "values": {str(s): values[s] for s in sizes},
        "ratios": {str(s): slowdown(unit, small, values[s]) for s in sizes},
    }


def warm_up(root: Path, args: argparse.Namespace) -> None:
    """A burst admitted on a fresh tree, untimed: the first admission in a process pays for
    imports and caches that the smallest tree's, measured first, must not."""
    config, settings = new_tree(root / "warm-up")
    with burst(Tree(0, root / "warm-up", config, settings, {}), args.burst) as run:
        run()


def run_all(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    trees = [build(root, size, args) for size in sizes]
    warm_up(root, args)
    figures: dict[str, dict[str, Any]] = {}
    ops = [
        op
        for op in operations(args)
        if not args.only or any(part in op.name for part in args.only.split(","))
    ]
    for op in ops:
        rounds = [{tree.size: measure(op, tree) for tree in trees} for _ in range(op.rounds)]
        best = max if op.unit.endswith("/s") else min
        values = {size: best(r[size] for r in rounds) for size in sizes}
        figures[f"{op.name}, {op.unit}"] = figure(op.unit, values, sizes)
        print(f"measured {op.name}", flush=True)
    profiles: dict[str, list[str]] = {}
    if not args.only:
        extra = Extra()
        plan_profile = reprocess(trees, extra, args.profile)
        for name, (unit, values) in extra.figures.items():
            figures[f"{name}, {unit}"] = figure(unit, values, sizes)
        plan = figures["reprocess --all: plan (select, read rows), s"]["ratios"][str(sizes[-1])]
        if plan > args.profile_above and plan_profile:
            profiles["reprocess --all: plan"] = plan_profile
    if args.profile:
        largest = trees[-1]
        for op in ops:
            ratio = figures[f"{op.name}, {op.unit}"]["ratios"][str(largest.size)]
            if ratio > args.profile_above:
                profiles[op.name] = profiled(op, largest)
    return {
        "sizes": sizes,
        "trees": {
            str(t.size): {
                "jobs": t.size,
                "ledger_shots": t.shots,
                "database_mb": t.database_mb,
                "build_s": t.build_s,
            }
            for t in trees
        },
        "figures": figures,
        "profiles": profiles,
        "notes": {
            "ratios": "how many times worse than on the smallest tree (time: longer; rate: "
            "fewer a second)",
            "reprocess": "--all is not run: its plan is measured in a process of its own (the "
            f"shots of at most {PLAN_JOBS} jobs read, the time for all of them extrapolated, "
            "the peak RSS measured: one job's shots held at a time), the analysis on the real "
            "jobs' shots (the sample); at the "
            "sample's rate --all would take the shots to analyse divided by the shots/s",
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", help=f"jobs of each tree, default {FULL['sizes']}")
    parser.add_argument("--burst", type=int, help=f"default {FULL['burst']}")
    parser.add_argument("--finish-shots", type=int, help=f"default {FULL['finish_shots']}")
    parser.add_argument("--sample-jobs", type=int, help=f"default {FULL['sample_jobs']}")
    parser.add_argument("--profile", action="store_true", help="profile what grows")
    parser.add_argument(
        "--profile-above",
        type=float,
        default=RATIO_PROFILED,
        help=f"with --profile: the ratios profiled (default above {RATIO_PROFILED})",
    )
    parser.add_argument("--out", "--json", dest="out", type=Path, help="the figures as JSON")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--only",
        help="measure only the operations whose names contain one of these comma-separated "
        "words (e.g. start-up); reprocess is then left out",
    )
    if sys.argv[1:2] == ["--reprocess-plan"]:  # the children of reprocess()
        plan = reprocess_plan(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:] == ["profile"])
        print(json.dumps(plan))
        return 0
    if sys.argv[1:2] == ["--reprocess-child"]:
        return reprocess_child(sys.argv[2], sys.argv[3:])
    args = parse_sized(parser, FULL, SMOKE)
    with tempfile.TemporaryDirectory(prefix="labspool-bench-year-") as tmp:
        root = Path(tmp)
        with labscript_sandbox(root):
            results = run_all(root, args)
    sizes = results["sizes"]
    print(table(results["figures"], sizes))
    for name, lines in results["profiles"].items():
        print(f"\n-- where {name} spends its time on {sizes[-1]:,} jobs --")
        print("\n".join(lines[:60]))
    return finish(args, results)


if __name__ == "__main__":
    sys.exit(main())
