"""A pool of worker processes that each run one task at a time, and say who died on what.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: when one of its workers dies, the
whole pool breaks and every task in flight fails, with no telling which one killed it. Here
each worker is a spawned process (not forked: the labscript suite and HDF5 are not
fork-safe) with a pipe of its own and a thread in the parent that waits on that pipe, so:

- a worker that dies (a segfault in a library on a damaged file, a routine that ends its
  process, the kernel's OOM killer) is known to have died on the one task it had; it is
  replaced, and the task comes back as a :class:`Done` with ``death`` saying how it died;
- a task that runs longer than ``timeout_s`` has its worker killed, and comes back so too;
- a worker that dies before it is ready (its imports fail) is the workers' fault, not a
  task's: :attr:`WorkerPool.broken` says so and no worker starts until
  :meth:`WorkerPool.retry`;
- a worker dies with the pool's process (``PR_SET_PDEATHSIG``): a daemon killed with
  ``kill -9`` leaves no worker writing a shot the next daemon takes up.

The pool calls *on_done* (from its threads) whenever a task comes back, so that a loop that
sleeps on an event wakes. The function that workers run is named ``module:function`` and
imported in each worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from spooler.core.errors import describe_exception

__all__ = ["Done", "WorkerPool"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Done:
    key: str
    value: Any = None
    error: str | None = None  # the function raised: "<type>: <message>"
    death: str | None = None  # the worker died on the task: how


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it ended without an exit code"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: only the check below
    if os.getppid() != parent:
        os._exit(0)


def _worker_main(conn: Connection, function: str, parent: int, warm_up: str | None) -> None:
    """A worker's life: run what comes on *conn* until it closes."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers end
    module, _, name = function.partition(":")
    run = getattr(importlib.import_module(module), name)
    if warm_up:
        module, _, name = warm_up.partition(":")
        getattr(importlib.import_module(module), name)()
    conn.send(("ready", None))
    while True:
        try:
            payload = conn.recv()
        except (EOFError, OSError):
            return
        if payload is None:
            return
        try:
            conn.send(("ok", run(payload)))
        except Exception as exc:
            conn.send(("error", describe_exception(exc)))


class _Worker:
    def __init__(self, pool: WorkerPool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process: BaseProcess = ctx.Process(
            target=_worker_main,
            args=(child, pool.function, os.getpid(), pool.warm_up),
            name="labspool-worker",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.key: str | None = None  # the task it has
        self.started = 0.0  # when it got it (monotonic)
        self.ready = False
        self.killed: str | None = None  # why the pool killed it
        self.thread = threading.Thread(
            target=pool._listen, args=(self,), name="labspool-worker-listener", daemon=True
        )
        self.thread.start()


class WorkerPool:
    def __init__(
        self,
        size: int,
        function: str,
        *,
        on_done: Callable[[], None] = lambda: None,
        timeout_s: float | None = None,
        warm_up: str | None = None,
    ) -> None:
        """*size* workers running *function* (``module:function``) on each task;
        *warm_up* (``module:function``, no arguments) runs once in each new worker."""
        self.size = size
        self.function = function
        self.warm_up = warm_up
        self.on_done = on_done
        self.timeout_s = timeout_s
        self._done: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a worker became ready, or died
        self._workers: list[_Worker] = []
        self._pending: list[tuple[str, Any]] = []  # submitted, waiting for a free worker
        self._closed = False
        self.broken: str | None = None  # why new workers do not start (see retry)

    # -- the parent's side --------------------------------------------------------------

    def start(self) -> None:
        """Start every worker now (they import what they need before the first task)."""
        with self._lock:
            while len(self._workers) < self.size and self.broken is None:
                self._workers.append(_Worker(self))

    def submit(self, key: str, payload: Any) -> None:
        """Run the function on *payload* in a worker; its :class:`Done` comes with *key*."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            self._pending.append((key, payload))
            self._dispatch()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until every worker has started and imported what it needs (or one died
        before it was ready); returns whether all are ready."""
        deadline = time.monotonic() + timeout_s
        with self._ready:
            while True:
                ready = sum(w.ready for w in self._workers)
                if ready >= self.size or self.broken is not None:
                    return ready >= self.size
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ready.wait(left)

    def retry(self) -> None:
        """Start workers again after one died before it was ready (:attr:`broken`)."""
        with self._lock:
            self.broken = None
            self._dispatch()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending) + sum(w.key is not None for w in self._workers)

    def done(self) -> list[Done]:
        """The tasks that came back since the last call."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def check_timeouts(self, now: float | None = None) -> int:
        """Kill the workers whose task has run longer than the timeout; returns how many."""
        if self.timeout_s is None:
            return 0
        now = time.monotonic() if now is None else now
        killed = 0
        with self._lock:
            for worker in self._workers:
                if (
                    worker.key is not None
                    and worker.killed is None
                    and now - worker.started > self.timeout_s
                ):
                    worker.killed = f"it did not finish in {self.timeout_s:g} s and was killed"
                    worker.process.kill()
                    killed += 1
        return killed

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def close(self) -> None:
        """Stop the workers (a task in hand is abandoned: its Done never comes)."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
            self._pending.clear()
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        deadline = time.monotonic() + 5.0
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()

    # -- inside (the lock held by the caller) -------------------------------------------

    def _dispatch(self) -> None:
        while self._pending and self.broken is None:
            idle = next((w for w in self._workers if w.ready and w.key is None), None)
            if idle is None:
                if len(self._workers) < self.size:
                    self._workers.append(_Worker(self))
                return  # a new worker takes the next task once it is ready
            key, payload = self._pending.pop(0)
            idle.key, idle.started = key, time.monotonic()
            with contextlib.suppress(OSError):  # it died meanwhile: its listener says so
                idle.conn.send(payload)

    def _listen(self, worker: _Worker) -> None:
        """A worker's thread in the parent: what comes back, or the worker's death."""
        while True:
            try:
                kind, value = worker.conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                if kind == "ready":
                    worker.ready = True
                    self._ready.notify_all()
                    self._dispatch()
                    continue
                key, worker.key = worker.key, None
                self._dispatch()
            if key is not None:
                self._done.put(
                    Done(key, value=value) if kind == "ok" else Done(key, error=str(value))
                )
                self.on_done()
        worker.process.join()
        with self._lock:
            if self._closed or worker not in self._workers:
                return
            self._workers.remove(worker)
            key = worker.key
            how = worker.killed or _describe_exit(worker.process.exitcode)
            if not worker.ready:
                # It died before it could take a task: not a shot's doing but the workers'
                # (an import that fails, no memory). No new worker until retry().
                self.broken = f"a new worker process died before it was ready ({how})"
                log.error("%s", self.broken)
                self._ready.notify_all()
            else:
                self._dispatch()
        worker.conn.close()
        if key is not None:
            log.warning("a worker (pid %s) died on %s: %s", worker.process.pid, key, how)
            self._done.put(Done(key, death=how))
            self.on_done()
