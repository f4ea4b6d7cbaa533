"""The worker pool: who died on what, time-outs, and workers that die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from result.pool import Done, WorkerPool

WORK = "tests.result.pool_work:work"


@pytest.fixture
def wake() -> threading.Event:
    return threading.Event()


@pytest.fixture
def pool(wake: threading.Event) -> Iterator[WorkerPool]:
    p = WorkerPool(2, WORK, on_done=wake.set, timeout_s=30)
    yield p
    p.close()


def collect(pool: WorkerPool, wake: threading.Event, count: int) -> dict[str, Done]:
    got: dict[str, Done] = {}
    deadline = time.monotonic() + 60
    while len(got) < count:
        assert wake.wait(max(0.0, deadline - time.monotonic())), f"only {sorted(got)}"
        wake.clear()
        got.update((d.key, d) for d in pool.done())
    return got


def test_tasks_come_back_with_their_keys_from_every_worker(
    pool: WorkerPool, wake: threading.Event
) -> None:
    for i in range(8):
        pool.submit(f"t{i}", ("sleep", 0.2) if i < 2 else ("echo", i))
    done = collect(pool, wake, 8)
    assert {d.value[0] for k, d in done.items() if k not in ("t0", "t1")} == set(range(2, 8))
    assert len({d.value[1] for d in done.values()}) == 2, "both workers worked"
    assert pool.in_flight() == 0


def test_a_worker_that_dies_is_known_to_have_died_on_its_task_alone(
    pool: WorkerPool, wake: threading.Event
) -> None:
    pool.submit("slow", ("sleep", 1.0))
    pool.submit("poison", ("exit", 3))
    pool.submit("after", ("echo", "fine"))
    done = collect(pool, wake, 3)
    assert done["poison"].death == "exit code 3"
    assert done["slow"].death is None and done["slow"].value[0] == 1.0, "its neighbour lives"
    assert done["after"].value[0] == "fine", "a new worker took the next task"


def test_a_task_that_raises_comes_back_with_the_error(
    pool: WorkerPool, wake: threading.Event
) -> None:
    pool.submit("bad", ("raise", "the camera saw nothing"))
    assert collect(pool, wake, 1)["bad"].error == "ValueError: the camera saw nothing"


def test_a_task_past_its_time_has_its_worker_killed(wake: threading.Event) -> None:
    pool = WorkerPool(1, WORK, on_done=wake.set, timeout_s=0.5)
    try:
        pool.submit("stuck", ("hang", None))
        deadline = time.monotonic() + 60
        while pool.check_timeouts() == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)  # polling a clock: there is no event for "late"
        done = collect(pool, wake, 1)["stuck"]
        assert done.death == "it did not finish in 0.5 s and was killed"
        pool.submit("next", ("echo", 1))
        assert collect(pool, wake, 1)["next"].value[0] == 1
    finally:
        pool.close()


def test_workers_that_cannot_start_are_the_pools_fault_not_a_tasks(
    wake: threading.Event,
) -> None:
    pool = WorkerPool(1, WORK, on_done=wake.set, warm_up="tests.result.pool_work:broken_warm_up")
    try:
        pool.submit("innocent", ("echo", 1))
        deadline = time.monotonic() + 60
        while pool.broken is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)  # the listener thread notes it; no event to wait on
        assert "died before it was ready (exit code 7)" in pool.broken
        assert pool.done() == [] and pool.in_flight() == 1, "the task waits, not blamed"
    finally:
        pool.close()


def test_workers_die_with_the_process_that_made_the_pool(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        "import sys, time\n"
        "from result.pool import WorkerPool\n"
        f"pool = WorkerPool(2, {WORK!r})\n"
        "pool.start()\n"
        "pool.submit('a', ('hang', None))\n"
        "while len(pool.pids()) < 2: time.sleep(0.05)\n"
        f"open({str(pids)!r}, 'w').write(' '.join(map(str, pool.pids())))\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() or not pids.read_text():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.05)
        workers = [int(p) for p in pids.read_text().split()]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "a worker outlived its pool"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
