"""Where single-shot analysis runs: ``result.executor`` in the configuration.

- ``inline``: in the result daemon's own process, one shot at a time (for debugging). A
  shot on which the daemon died is analysed next in a process of its own, where a crash is
  seen for what it is (:class:`IsolatedExecutor`).
- ``processes`` (the default): a :class:`result.pool.WorkerPool` of spawned worker
  processes on this machine, ``workers`` of them (default: the number of cores).
- ``dask``: Dask distributed. With ``scheduler``, the workers of that existing cluster;
  without, a ``LocalCluster`` of ``workers`` processes with one thread each (lyse's routines
  use module globals and ``os.chdir``), on loopback, that the daemon starts and stops.

Every executor takes :class:`result.task.ShotTask` s and gives back :class:`Finished` s,
in whatever order the shots finish; the daemon keeps at most :attr:`Executor.capacity` in
flight. What comes back says one of: the task's outcome; a ``death`` (the worker process
died on this shot: counted against the shot, like a crash of the daemon); ``given_up`` (Dask
gave up the shot after it killed ``distributed.scheduler.allowed-failures`` workers; Dask
blames every task that was on a worker when it died, so the daemon analyses such a shot once
more alone, in a process of its own on its machine, where a death is the shot's own);
``retry`` (Dask lost the task: a scheduler that went away; not the shot's doing); an
``error`` (labspool's own fault in the task). A pool whose workers cannot start raises
:class:`WorkersUnavailable`: the daemon waits and retries, as for a store that is away.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from result.archive import StoreUnavailable
from result.pool import WorkerPool
from result.task import ShotOutcome, ShotTask, run_shot, warm_up
from spooler.core.errors import describe_exception
from spooler.core.settings import ExecutorSettings

__all__ = [
    "DaskExecutor",
    "Executor",
    "Finished",
    "InlineExecutor",
    "IsolatedExecutor",
    "ProcessExecutor",
    "WorkersUnavailable",
    "make_executor",
]

log = logging.getLogger(__name__)

_RUN = "result.task:run_shot"
THREADS_EVERY_S = 10.0
_WARM = "result.task:warm_up"


class WorkersUnavailable(StoreUnavailable):
    """The analysis workers cannot take shots now (they die as they start, the Dask
    scheduler does not answer): nothing is the shot's fault; tried again later."""


@dataclass(frozen=True)
class Finished:
    key: str  # the shot's address
    outcome: ShotOutcome | None = None
    death: str | None = None  # the process analysing it died: how
    given_up: str | None = None  # the executor gave it up (Dask: it killed workers)
    retry: str | None = None  # the executor lost the task (Dask's trouble): submit it again
    error: str | None = None  # labspool's fault in the task: "<type>: <message>"


class Executor:
    kind = ""
    runs_here = False  # True: a death of the daemon during a task is a death on its shot

    def __init__(self, capacity: int, wake: threading.Event) -> None:
        self.capacity = capacity
        self.wake = wake

    def submit(self, task: ShotTask) -> None:
        raise NotImplementedError

    def finished(self) -> list[Finished]:
        raise NotImplementedError

    def in_flight(self) -> int:
        raise NotImplementedError

    def tick(self) -> None:
        """Housekeeping between passes (time-outs)."""

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the workers can take shots; returns whether they can."""
        return True

    def workers(self) -> list[str]:
        """Who works (for the log and the command line)."""
        return []

    def close(self) -> None:
        """Stop what the executor started; what is in flight is abandoned."""


class InlineExecutor(Executor):
    kind = "inline"
    runs_here = True

    def __init__(self, wake: threading.Event) -> None:
        super().__init__(1, wake)
        self._done: list[Finished] = []

    def submit(self, task: ShotTask) -> None:
        try:
            self._done.append(Finished(task.address, outcome=run_shot(task)))
        except Exception as exc:
            self._done.append(Finished(task.address, error=describe_exception(exc)))

    def finished(self) -> list[Finished]:
        done, self._done = self._done, []
        return done

    def wait_ready(self, timeout_s: float) -> bool:
        warm_up()
        return True

    def in_flight(self) -> int:
        return len(self._done)

    def workers(self) -> list[str]:
        return ["the result daemon's own process"]


class ProcessExecutor(Executor):
    kind = "processes"

    def __init__(self, workers: int, wake: threading.Event, *, per_worker: int, timeout_s: float):
        super().__init__(workers * per_worker, wake)
        self.pool = WorkerPool(workers, _RUN, on_done=wake.set, timeout_s=timeout_s, warm_up=_WARM)
        self.pool.start()

    def submit(self, task: ShotTask) -> None:
        self.pool.submit(task.address, task)

    def finished(self) -> list[Finished]:
        out = []
        for done in self.pool.done():
            if done.death is not None:
                out.append(Finished(done.key, death=done.death))
            elif done.error is not None:
                out.append(Finished(done.key, error=done.error))
            else:
                out.append(Finished(done.key, outcome=done.value))
        if self.pool.broken is not None:
            self.pool.retry()  # the daemon has waited its back-off before this pass
            if self.pool.broken is not None:
                raise WorkersUnavailable(self.pool.broken)
        return out

    def in_flight(self) -> int:
        return self.pool.in_flight()

    def wait_ready(self, timeout_s: float) -> bool:
        return self.pool.wait_ready(timeout_s)

    def tick(self) -> None:
        self.pool.check_timeouts()
        if self.pool.broken is not None:
            raise WorkersUnavailable(self.pool.broken)

    def workers(self) -> list[str]:
        return [f"worker process {pid}" for pid in self.pool.pids()] or [
            f"{self.pool.size} worker process(es), started with the first shot"
        ]

    def close(self) -> None:
        self.pool.close()


class IsolatedExecutor(ProcessExecutor):
    """One worker process for the shots on which the daemon died (``inline``)."""

    kind = "isolated"

    def __init__(self, wake: threading.Event, *, timeout_s: float) -> None:
        super().__init__(1, wake, per_worker=1, timeout_s=timeout_s)


class DaskExecutor(Executor):
    kind = "dask"

    def __init__(
        self, settings: ExecutorSettings, wake: threading.Event, *, scratch: Path | None = None
    ) -> None:
        _allow_toolz_aliases()  # before Dask's imports, if the suite is imported here already
        try:
            import distributed
        except ImportError as exc:  # pragma: no cover - a dependency of labspool
            raise WorkersUnavailable(f"result.executor dask: {exc}") from exc
        self._distributed: Any = distributed
        self.cluster: Any = None
        if settings.scheduler is None:
            self.cluster = self._distributed.LocalCluster(
                n_workers=settings.worker_count(),
                threads_per_worker=1,  # lyse's routines: module globals, os.chdir
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address=None,
                silence_logs=logging.WARNING,
                local_directory=None if scratch is None else str(scratch / "dask"),
            )
            address = self.cluster.scheduler_address
        else:
            address = settings.scheduler
        try:
            self.client: Any = self._distributed.Client(address, timeout=30, set_as_default=False)
        except Exception as exc:
            if self.cluster is not None:
                self.cluster.close()
            raise WorkersUnavailable(
                f"cannot reach the Dask scheduler {address}: {describe_exception(exc)}"
            ) from exc
        try:
            self.client.register_plugin(_warm_up_plugin(distributed), name="labspool-warm-up")
        except Exception as exc:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
            raise WorkersUnavailable(
                f"the Dask workers cannot import the labscript suite: {describe_exception(exc)}"
            ) from exc
        self._per_worker = settings.in_flight_per_worker
        self._fallback = settings.worker_count()
        self._threads_at = float("-inf")
        super().__init__(0, wake)
        self._threads()
        self._futures: dict[str, Any] = {}
        self._done: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._count = 0

    def _threads(self) -> None:
        """The window follows the cluster's threads (workers that join or leave: `scale`,
        `adapt`), asked again at most every ``THREADS_EVERY_S``."""
        if time.monotonic() - self._threads_at < THREADS_EVERY_S:
            return
        self._threads_at = time.monotonic()
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:
            return  # the scheduler does not answer now: the window stays
        self.capacity = (threads or self._fallback) * self._per_worker

    def tick(self) -> None:
        self._threads()

    def submit(self, task: ShotTask) -> None:
        self._count += 1
        # A key of our own, unique per submission: a repeat of the task is a new task.
        key = f"labspool-shot-{task.address}-{time.time_ns()}-{self._count}"
        try:
            future = self.client.submit(run_shot, task, key=key, pure=False)
        except Exception as exc:  # the scheduler is gone: the daemon waits and retries
            raise WorkersUnavailable(
                f"the Dask scheduler did not take the task: {describe_exception(exc)}"
            ) from exc
        self._futures[task.address] = future

        def done(f: Any, address: str = task.address) -> None:
            self._done.put((address, f))
            self.wake.set()

        future.add_done_callback(done)

    def finished(self) -> list[Finished]:
        killed_worker = self._distributed.KilledWorker
        out: list[Finished] = []
        while True:
            future: Any
            try:
                address, future = self._done.get_nowait()
            except queue.Empty:
                return out
            if address not in self._futures or self._futures[address] is not future:
                continue  # superseded
            del self._futures[address]
            if future.status == "finished":
                out.append(Finished(address, outcome=future.result()))
                continue
            if future.status == "cancelled":  # a scheduler lost or restarted: not the shot's
                out.append(Finished(address, retry="Dask cancelled the task"))
                continue
            exc = future.exception()
            if isinstance(exc, killed_worker):
                out.append(
                    Finished(
                        address,
                        given_up=(
                            "Dask workers died while analysing it, one after another, until "
                            f"Dask gave it up ({describe_exception(exc)})"
                        ),
                    )
                )
            elif _of_dask(exc):  # the cluster's trouble (a lost connection, a time-out)
                out.append(Finished(address, retry=describe_exception(exc)))
            else:
                out.append(Finished(address, error=describe_exception(exc)))

    def in_flight(self) -> int:
        return len(self._futures)

    def wait_ready(self, timeout_s: float) -> bool:
        try:
            self.client.wait_for_workers(1, timeout=timeout_s)
        except Exception:  # distributed raises its own TimeoutError
            return False
        return True

    def workers(self) -> list[str]:
        try:
            return sorted(self.client.nthreads())
        except Exception:
            return []

    def close(self) -> None:
        for future in self._futures.values():
            future.release()
        self._futures.clear()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _of_dask(exc: BaseException | None) -> bool:
    """An exception of Dask itself (a cancelled future, a closed connection), not one that
    the task raised."""
    import asyncio

    if exc is None or isinstance(exc, asyncio.CancelledError | TimeoutError):
        return True
    return (type(exc).__module__ or "").startswith(("distributed", "tornado"))


def _allow_toolz_aliases() -> None:
    """Let the labscript suite's double-import denier (enabled when ``labscript_utils`` is
    imported) pass ``tlz``, which Dask imports and which imports each ``toolz`` module again
    under its own name, on purpose (the denier raises "Double import!" on it)."""
    import sys

    denier = sys.modules.get("labscript_utils.double_import_denier")
    whitelist = getattr(denier, "WHITELIST", None)
    if isinstance(whitelist, list):
        whitelist.extend(name for name in ("tlz", "toolz") if name not in whitelist)


def _warm_up_plugin(distributed: Any) -> Any:
    """A worker plugin that warms each Dask worker up (:func:`result.task.warm_up`) as it
    starts, the workers there are and those that replace them: in the worker's main thread,
    since importing the suite sets a signal handler (zprocess's ``KillLock``), which Python
    allows only there, and Dask runs tasks in other threads."""

    class WarmUp(distributed.WorkerPlugin):  # type: ignore[misc]
        idempotent = True

        def setup(self, worker: Any) -> None:
            warm_up()
            _allow_toolz_aliases()  # Dask's later imports in this worker

    return WarmUp()


def make_executor(
    settings: ExecutorSettings, wake: threading.Event, *, scratch: Path | None = None
) -> Executor:
    """*scratch*: a folder for what a Dask LocalCluster keeps on disk (its workers' space;
    default: the temporary folder)."""
    if settings.kind == "inline":
        return InlineExecutor(wake)
    if settings.kind == "processes":
        return ProcessExecutor(
            settings.worker_count(),
            wake,
            per_worker=settings.in_flight_per_worker,
            timeout_s=settings.task_timeout_s,
        )
    if settings.kind == "dask":
        return DaskExecutor(settings, wake, scratch=scratch)
    raise ValueError(f"unknown executor kind {settings.kind!r}")
