#!/usr/bin/env python3
"""Benchmark of the HTTP gateway (``labspool web``) while both daemons run the virtual lab.

Everything runs for real, each as its own process: ``labspool lab up`` (the genuine
runmanager and BLACS, offscreen), the spooler, the result daemon and ``labspool web``. The
load is made by this process with asyncio and plain HTTP/1.1, one new connection per
request, as the released client's ``requests.get`` makes them.

1. ``post_job``: P one-shot jobs posted by U users (``labspool user add``), C requests at
   a time; jobs posted per second. Baseline in the same run: the same number of jobs put
   into a scratch tree's dump folder by ``spooler.core.submission.submit_job`` in this process
   (the atomic, durable submission post_job goes through, without HTTP).
2. Polling: N simulated clients, each following one of the posted jobs with
   ``get_job_status`` every ``--interval-s`` (5 s, the client's own interval: N / 5
   requests a second), each from a random phase (as clients that started at their own
   times), for ``--duration-s`` while the lab runs the posted jobs; latency from
   connecting until the whole answer is read, p50 and p99. Baseline in the same run,
   under the same load: a probe that asks the trivial endpoint of the same server
   (``GET /api/v2/backends``: a user checked, no store) at random (Poisson) times,
   ``--probe-per-s`` on average. Every answer must be 200 with a JSON ``status`` (the
   backends: a JSON list); the refusals (429 above all) are counted and reported.
3. Under attack, once the lab has run the jobs: the same N clients poll in windows of
   ``--attack-duration-s``, three kinds in turn, ``--attack-rounds`` times; their p99 under
   each attack (pooled over its rounds) is the result, as a ratio to the quiet windows' (the
   baseline, measured in between, in the same run). The kinds: quiet; while ``--idle``
   connections that send nothing and ``--slowloris`` connections that send a header line
   every second are kept open (each reopened when the gateway closes it), from 64 other
   loopback addresses (a distributed attacker: under the cap per address, so that the idle
   timeout is what holds); while one user posts jobs of ``--big-job-bytes`` (15 experiments
   of as many instructions as that takes) back to back, from an address of its own. The
   attackers run in a process of their own at the lowest priority, on the last CPU with the
   clients, while the gateway has the others (in every window, the quiet one too): an
   attacker's machine is not the gateway's. Connections the gateway closed are counted.

The machine is shared: the CPU time other processes used while the polling ran is reported
as a share of the machine (a warning above 10%: the figures are noise). Everything runs
under one temporary folder, removed at the end, and every process started is stopped by
pid. ``--smoke`` runs it all at a tiny size (to check that it runs, not to measure).

    python scripts/bench_web.py [--clients 1000] [--interval-s 5] [--duration-s 60]
                                [--users 50] [--post-jobs 100] [--attack-duration-s 30]
                                [--idle 1000] [--slowloris 500] [--big-job-bytes 1000000]
                                [--out FILE]
    python scripts/bench_web.py --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench_dutycycle import OTHER_CPU_WARN, CpuMeter, Lab, isolate, job, running_lab, wait_for
from benchkit import add_sizes, finish, parse_sized

from spooler.core.labprofile import stop_process
from spooler.core.scaffold import write_tree
from spooler.core.settings import load_settings
from spooler.core.submission import submit_job

FULL = {
    "clients": 1000,
    "interval_s": 5.0,
    "duration_s": 60.0,
    "users": 50,
    "post_jobs": 100,
    "probe_per_s": 20.0,
    "attack_duration_s": 30.0,
    "attack_rounds": 2,
    "idle": 1000,
    "slowloris": 500,
    "big_job_bytes": 1_000_000,
}
SMOKE = {
    "clients": 20,
    "interval_s": 1.0,
    "duration_s": 3.0,
    "users": 2,
    "post_jobs": 4,
    "probe_per_s": 5.0,
    "attack_duration_s": 3.0,
    "attack_rounds": 1,
    "idle": 20,
    "slowloris": 10,
    "big_job_bytes": 100_000,  # over the instruction limit, as the full size
}
ATTACK_ADDRESSES = [f"127.0.1.{i}" for i in range(1, 65)]  # not the clients' 127.0.0.1
POSTER_ADDRESS = "127.0.2.1"  # the big jobs' poster: an address of its own, not a proxy's
POST_CONCURRENCY = 10
REQUEST_TIMEOUT_S = 30.0
PROBE_SEED = 20261203
PHASE_SEED = 5


# -- HTTP, by hand: one connection a request ----------------------------------------------


@dataclass
class Answer:
    code: int
    body: bytes
    latency_s: float


async def request(
    port: int, method: str, path: str, body: bytes | None = None, source: str | None = None
) -> Answer:
    started = time.perf_counter()
    local = None if source is None else (source, 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + (body or b""))
        await writer.drain()
        raw = await reader.read()  # until the server closes
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    latency = time.perf_counter() - started
    status_line, _, rest = raw.partition(b"\r\n")
    code = int(status_line.split()[1]) if status_line.startswith(b"HTTP/1.1 ") else 0
    return Answer(code, rest.partition(b"\r\n\r\n")[2], latency)


# -- the gateway ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_gateway(lab: Lab) -> Iterator[tuple[int, int]]:
    """``labspool web`` for *lab* on a free port (its log in the lab's folder); its port and
    pid once it answers, stopped by pid afterwards."""
    port = free_port()
    log = (lab.root / "web.log").open("ab")
    command = [sys.executable, "-m", "spooler.cli", "--config", str(lab.settings.path), "web"]
    process = subprocess.Popen(
        [*command, "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"labspool web exited with code {process.returncode}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(answers, 60, "labspool web to listen")
        yield port, process.pid
    finally:
        stop_process(process, timeout_s=30.0)


def add_users(lab: Lab, count: int) -> dict[str, str]:
    tokens = {}
    for i in range(count):
        name = f"user{i:03d}"
        tokens[name] = lab.labspool("user", "add", name).strip().splitlines()[-1]
    return tokens


# -- 1. post_job ----------------------------------------------------------------------------


async def post_jobs(port: int, tokens: dict[str, str], jobs: int) -> dict[str, Any]:
    users = sorted(tokens)
    gate = asyncio.Semaphore(POST_CONCURRENCY)
    path = "/api/v2/singlequdit/post_job"

    async def post(i: int) -> tuple[str, str]:
        user = users[i % len(users)]
        body = {"job": json.dumps(job(1, seed=i)), "username": user, "token": tokens[user]}
        async with gate:
            answer = await request(port, "POST", path, json.dumps(body).encode())
        if answer.code != 200:
            raise RuntimeError(f"post_job answered {answer.code}: {answer.body[:300]!r}")
        return user, str(json.loads(answer.body)["job_id"])

    started = time.perf_counter()
    posted = await asyncio.gather(*(post(i) for i in range(jobs)))
    wall = time.perf_counter() - started
    return {"jobs": jobs, "wall_s": wall, "jobs_per_s": jobs / wall, "posted": posted}


def direct_submissions(root: Path, jobs: int) -> dict[str, Any]:
    """The baseline: the same submission in this process, into a scratch tree."""
    folders = load_settings(write_tree(root / "scratch", "singlequdit")).folders
    data = [json.dumps(job(1, seed=i)).encode() for i in range(jobs)]
    started = time.perf_counter()
    for i, content in enumerate(data):
        submit_job(folders, content, user=f"user{i % 7:03d}")
    wall = time.perf_counter() - started
    return {"jobs": jobs, "wall_s": wall, "jobs_per_s": jobs / wall}


# -- 2. polling -----------------------------------------------------------------------------


@dataclass
class Series:
    latencies_s: list[float] = field(default_factory=list)
    codes: Counter[int] = field(default_factory=Counter)
    late_s: list[float] = field(default_factory=list)  # how late each request was sent

    def summary(self, duration_s: float) -> dict[str, Any]:
        ordered = sorted(self.latencies_s)

        def quantile(q: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

        return {
            "requests": len(ordered),
            "per_s": len(ordered) / duration_s,
            "p50_ms": None if not ordered else 1e3 * statistics.median(ordered),
            "p99_ms": None if not ordered else 1e3 * (quantile(0.99) or 0.0),
            "max_ms": None if not ordered else 1e3 * ordered[-1],
            "codes": {str(k): v for k, v in sorted(self.codes.items())},
            "sent_late_p99_ms": 1e3 * sorted(self.late_s)[int(0.99 * (len(self.late_s) - 1))]
            if self.late_s
            else None,
        }


async def paced(
    port: int,
    paths: list[str],
    interval_s: Callable[[], float],
    offset_s: float,
    end: float,
    into: Series,
) -> None:
    """Ask *paths* in turn, starting *offset_s* from now, then after each *interval_s()*,
    until *end*."""
    due = time.perf_counter() + offset_s
    i = 0
    while due < end:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        into.late_s.append(max(0.0, time.perf_counter() - due))
        try:
            answer = await asyncio.wait_for(
                request(port, "GET", paths[i % len(paths)]), REQUEST_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            into.codes[0] += 1
        else:
            into.codes[answer.code] += 1
            document = json.loads(answer.body) if answer.code == 200 else None
            if isinstance(document, list) or (isinstance(document, dict) and "status" in document):
                into.latencies_s.append(answer.latency_s)
        i += 1
        due += interval_s()


async def poll(
    port: int,
    tokens: dict[str, str],
    posted: list[tuple[str, str]],
    args: argparse.Namespace,
    probe_credentials: tuple[str, str],
    duration_s: float | None = None,
) -> dict[str, Any]:
    duration_s = args.duration_s if duration_s is None else duration_s
    status, trivial = Series(), Series()
    await poll_into(status, trivial, port, tokens, posted, args, probe_credentials, duration_s)
    return {
        "get_job_status": status.summary(duration_s),
        "trivial_backends": trivial.summary(duration_s),
    }


async def poll_into(
    status: Series,
    trivial: Series,
    port: int,
    tokens: dict[str, str],
    posted: list[tuple[str, str]],
    args: argparse.Namespace,
    probe_credentials: tuple[str, str],
    duration_s: float,
) -> None:
    """The clients' and the probe's polling for *duration_s*, into *status* and *trivial*."""
    start = time.perf_counter() + 0.5
    end = start + duration_s
    clients = []
    # Each client polls from its own start, so their phases are random: evenly spread
    # phases would be a gentler load than real clients make (no two requests ever meet).
    phases = random.Random(PHASE_SEED)
    for i in range(args.clients):
        user, job_id = posted[i % len(posted)]
        path = "/api/v2/singlequdit/get_job_status?" + urlencode(
            {"job_id": job_id, "username": user, "token": tokens[user]}
        )
        offset = 0.5 + args.interval_s * phases.random()
        clients.append(paced(port, [path], lambda: args.interval_s, offset, end, status))
    # The probe asks at random (Poisson) times, so that it samples every phase of the
    # clients' regular schedule alike, as a request of a client does.
    rng = random.Random(PROBE_SEED)
    probe_user, probe_token = probe_credentials
    probe = paced(
        port,
        ["/api/v2/backends?" + urlencode({"username": probe_user, "token": probe_token})],
        lambda: rng.expovariate(args.probe_per_s),
        0.5 + rng.expovariate(args.probe_per_s),
        end,
        trivial,
    )
    await asyncio.gather(*clients, probe)


# -- 3. under attack ------------------------------------------------------------------------


async def _connect(
    port: int, source: str, counts: Counter[str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from *source*, tried again a moment later until one is made."""
    while True:
        try:
            return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        except OSError:
            counts["connect failed"] += 1
            await asyncio.sleep(0.1)


async def idle_connection(port: int, source: str, closed: Counter[str]) -> None:
    """A connection that sends nothing, opened again each time the gateway closes it."""
    while True:
        reader, writer = await _connect(port, source, closed)
        await reader.read()  # until the gateway closes it
        closed["idle"] += 1
        writer.close()


async def slowloris_connection(port: int, source: str, closed: Counter[str]) -> None:
    """A request whose head never ends: a header line every second."""
    while True:
        reader, writer = await _connect(port, source, closed)
        try:
            writer.write(b"GET /api/v2/singlequdit/get_config HTTP/1.1\r\nHost: x\r\n")
            while not reader.at_eof():
                await asyncio.sleep(1.0)
                writer.write(b"X-Slow: a\r\n")
                await writer.drain()
        except OSError:
            pass
        closed["slowloris"] += 1
        writer.close()


async def big_poster(
    port: int, user: str, token: str, job_bytes: int, posted: Counter[str]
) -> None:
    """One user posting jobs of about *job_bytes*, one after the other."""
    per_experiment = max(1, job_bytes // (15 * 22))  # an instruction is ~22 bytes of JSON
    instruction = ["rlx", [0], [0.125]]
    big = {
        f"experiment_{i}": {
            "instructions": [["load", [0], [50.0]]]
            + [instruction] * per_experiment
            + [["measure", [0], []]],
            "num_wires": 1,
            "shots": 1,
            "wire_order": "sequential",
        }
        for i in range(15)
    }
    body = json.dumps({"job": json.dumps(big), "username": user, "token": token}).encode()
    posted["bytes"] = len(body)
    while True:
        try:
            answer = await request(
                port, "POST", "/api/v2/singlequdit/post_job", body, source=POSTER_ADDRESS
            )
        except OSError:
            posted["failed"] += 1
            continue
        posted[str(answer.code)] += 1
        if answer.code != 200:
            await asyncio.sleep(0.05)  # a refusal (429): as a client would, a moment later


async def _attack(kind: str, port: int, args: dict[str, Any], duration_s: float) -> dict[str, int]:
    counts: Counter[str] = Counter()
    tasks: list[asyncio.Task[None]] = []
    if kind == "connections":
        for i in range(args["idle"]):
            source = ATTACK_ADDRESSES[i % len(ATTACK_ADDRESSES)]
            tasks.append(asyncio.create_task(idle_connection(port, source, counts)))
        for i in range(args["slowloris"]):
            source = ATTACK_ADDRESSES[-1 - i % len(ATTACK_ADDRESSES)]
            tasks.append(asyncio.create_task(slowloris_connection(port, source, counts)))
    else:
        user, token = args["poster"]
        tasks.append(
            asyncio.create_task(big_poster(port, user, token, args["big_job_bytes"], counts))
        )
    await asyncio.sleep(duration_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return dict(counts)


def _attacker_main(
    kind: str, port: int, args: dict[str, Any], duration_s: float, out: Any, cpus: set[int]
) -> None:
    import resource

    if cpus:
        os.sched_setaffinity(0, cpus)
    os.nice(19)  # the clients' CPU comes first
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out.send(asyncio.run(_attack(kind, port, args, duration_s)))


def under_attack(
    port: int,
    gateway_pid: int,
    tokens: dict[str, str],
    posted: list[tuple[str, str]],
    args: argparse.Namespace,
    probe: tuple[str, str],
    poster: tuple[str, str],
) -> dict[str, Any]:
    """The clients' polling in windows: quiet, connections held, big jobs posted, in turn,
    ``--attack-rounds`` times; each kind's answers pooled over its rounds."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    kinds = ("quiet", "connections", "big_jobs")
    pooled = {kind: (Series(), Series()) for kind in kinds}
    attacks: dict[str, list[dict[str, int]]] = {kind: [] for kind in kinds}
    # The attacker's machine is not the gateway's: on a machine of 2 CPUs or more, the
    # gateway runs on all but the last, these clients and the attacker (at the lowest
    # priority, so that it takes no time the clients want) on the last, in every window.
    cpus = sorted(os.sched_getaffinity(0))
    last = {cpus[-1]} if len(cpus) >= 2 else set()
    gateway_cpus = set(cpus) - last
    was = os.sched_getaffinity(0), os.sched_getaffinity(gateway_pid)
    if last:
        os.sched_setaffinity(0, last)
        os.sched_setaffinity(gateway_pid, gateway_cpus)
    settle_s = 2.0  # the attack builds up before the clients' window begins
    options = {
        "idle": args.idle,
        "slowloris": args.slowloris,
        "big_job_bytes": args.big_job_bytes,
        "poster": poster,
    }
    try:
        for _ in range(args.attack_rounds):
            for kind in kinds:
                attacker = receiving = None
                if kind != "quiet":
                    receiving, sending = context.Pipe(duplex=False)
                    lasting_s = args.attack_duration_s + 2 * settle_s + 1
                    attacker = context.Process(
                        target=_attacker_main,
                        args=(kind, port, options, lasting_s, sending, last),
                    )
                    attacker.start()
                    time.sleep(settle_s)
                status, trivial = pooled[kind]
                asyncio.run(
                    poll_into(
                        status, trivial, port, tokens, posted, args, probe, args.attack_duration_s
                    )
                )
                if attacker is not None and receiving is not None:
                    attacks[kind].append(receiving.recv())
                    attacker.join(30)
    finally:
        os.sched_setaffinity(0, was[0])
        os.sched_setaffinity(gateway_pid, was[1])
    duration_s = args.attack_rounds * args.attack_duration_s
    windows: dict[str, Any] = {
        kind: {
            "get_job_status": pooled[kind][0].summary(duration_s),
            "trivial_backends": pooled[kind][1].summary(duration_s),
            "attack": attacks[kind],
        }
        for kind in kinds
    }
    windows["cpus"] = {"gateway": sorted(gateway_cpus), "clients_and_attacker": sorted(last)}
    return windows


# -- the run --------------------------------------------------------------------------------


def run_all(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    isolate(root)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "sizes": {k: getattr(args, k) for k in FULL}}
    results["submit_job_direct"] = direct_submissions(root, args.post_jobs)
    with running_lab(root / "lab", look_ahead_jobs=None, load_time_s=0.05, paused=True) as lab:
        tokens = add_users(lab, args.users)
        probe = ("probe", lab.labspool("user", "add", "probe", "--requests-per-s", "1000"))
        probe = (probe[0], probe[1].strip().splitlines()[-1])
        poster = ("poster", lab.labspool("user", "add", "poster").strip().splitlines()[-1])
        with running_gateway(lab) as (port, gateway_pid):
            posting = asyncio.run(post_jobs(port, tokens, args.post_jobs))
            posted = posting.pop("posted")
            results["post_job"] = posting
            lab.labspool("resume")  # the lab runs the posted jobs while the clients poll
            meter = CpuMeter()
            results["polling"] = asyncio.run(poll(port, tokens, posted, args, probe))
            results["polling"]["other_cpu_share"] = meter.other_share()
            done = sum(1 for _, j in posted if lab.status(j).get("status") == "DONE")
            results["polling"]["jobs_done_meanwhile"] = done
            lab.wait_for_states([j for _, j in posted], ("DONE",), 600)
            results["attack"] = under_attack(port, gateway_pid, tokens, posted, args, probe, poster)
        lab.check_daemons()
    polling = results["polling"]
    status, trivial = polling["get_job_status"], polling["trivial_backends"]
    if not status["requests"] or not trivial["requests"]:
        raise RuntimeError(f"no answers measured: {polling}")
    results["ratios"] = {
        "status_over_trivial_p50": status["p50_ms"] / trivial["p50_ms"],
        "status_over_trivial_p99": status["p99_ms"] / trivial["p99_ms"],
        "post_job_over_direct": results["post_job"]["jobs_per_s"]
        / results["submit_job_direct"]["jobs_per_s"],
    }
    attack = results["attack"]
    quiet_p99 = attack["quiet"]["get_job_status"]["p99_ms"]
    for kind in ("connections", "big_jobs"):
        p99 = attack[kind]["get_job_status"]["p99_ms"]
        if p99 is None or quiet_p99 is None:
            raise RuntimeError(f"no answers measured under attack: {attack[kind]}")
        results["ratios"][f"{kind}_over_quiet_p99"] = p99 / quiet_p99
    return results


def report(results: dict[str, Any]) -> None:
    sizes, polling = results["sizes"], results["polling"]
    post, direct = results["post_job"], results["submit_job_direct"]
    print(
        f"post_job: {post['jobs']} jobs by {sizes['users']} users, {POST_CONCURRENCY} at a "
        f"time: {post['jobs_per_s']:.1f} jobs/s (baseline submit_job in process "
        f"{direct['jobs_per_s']:.1f} jobs/s; ratio {results['ratios']['post_job_over_direct']:.3f})"
    )
    print(
        f"polling: {sizes['clients']} clients every {sizes['interval_s']:g} s for "
        f"{sizes['duration_s']:g} s, both daemons running the posted jobs "
        f"({polling['jobs_done_meanwhile']} DONE meanwhile; {results['cpus']} CPUs)"
    )
    for name in ("get_job_status", "trivial_backends"):
        s = polling[name]
        print(
            f"  {name:<17} {s['per_s']:6.1f} req/s  p50 {s['p50_ms']:7.2f} ms  "
            f"p99 {s['p99_ms']:7.2f} ms  max {s['max_ms']:7.2f} ms  codes {s['codes']}  "
            f"sent late p99 {s['sent_late_p99_ms']:.1f} ms"
        )
    ratios = results["ratios"]
    print(
        f"  get_job_status / trivial: p50 {ratios['status_over_trivial_p50']:.2f}x, "
        f"p99 {ratios['status_over_trivial_p99']:.2f}x"
    )
    attack, ratios = results["attack"], results["ratios"]
    print(
        f"under attack ({sizes['clients']} clients every {sizes['interval_s']:g} s, "
        f"{sizes['attack_rounds']} windows of {sizes['attack_duration_s']:g} s each):"
    )
    for kind, what in (
        ("quiet", "quiet (the baseline)"),
        ("connections", f"{sizes['idle']} idle + {sizes['slowloris']} slowloris connections"),
        ("big_jobs", f"one user posting jobs of {sizes['big_job_bytes']:,} bytes"),
    ):
        s = attack[kind]["get_job_status"]
        ratio = "" if kind == "quiet" else f"  ({ratios[f'{kind}_over_quiet_p99']:.2f}x quiet)"
        print(
            f"  {what:<52} p50 {s['p50_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms{ratio}  "
            f"codes {s['codes']}  {attack[kind].get('attack', '')}"
        )
    if polling["other_cpu_share"] > OTHER_CPU_WARN:
        print(
            f"WARNING: other processes used {polling['other_cpu_share']:.0%} of the machine "
            "meanwhile: these figures are noise"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_sizes(parser, FULL)
    parser.add_argument("--out", type=Path)
    args = parse_sized(parser, FULL, SMOKE, "the whole benchmark at a tiny size")
    if min(args.clients, args.users, args.post_jobs, args.idle, args.slowloris) < 1 or (
        args.post_jobs < args.users
    ):
        parser.error("--clients, --users and --post-jobs need 1 at least, jobs >= users")
    with tempfile.TemporaryDirectory(prefix="labspool-bench-web-") as tmp:
        results = run_all(Path(tmp), args)
    report(results)
    return finish(args, results)


if __name__ == "__main__":
    sys.exit(main())
