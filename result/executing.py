"""The result daemon's executors: the configured one, and one that analyses a shot alone.

The configured executor (:mod:`result.executors`: ``inline``, worker ``processes`` or a Dask
cluster) is started with the first shot, or when the daemon warms up. A shot is analysed
alone instead, in a process of its own that the daemon watches
(:class:`result.executors.IsolatedExecutor`), when Dask gave it up (a suspect: workers died,
maybe on another shot) or when, with ``inline``, the daemon itself died on it before: there
a death is known to be the shot's (:mod:`result.deaths`).

A Dask executor whose scheduler is lost is closed and made anew with the next shot; its
shots in flight wait for it. (A pool of worker processes mends itself:
:meth:`result.pool.WorkerPool.retry`.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from result.deaths import ShotDeaths
from result.executors import Executor, Finished, IsolatedExecutor, make_executor
from result.inhand import Flight, InHand
from result.task import ShotTask
from spooler.core.configsections import ExecutorSettings
from spooler.core.logs import for_job

__all__ = ["ISOLATED_TIMEOUT_S", "Executors"]

log = logging.getLogger(__name__)

ISOLATED_TIMEOUT_S = 20.0  # within systemd's watchdog interval (60 s; pings every 30 s)


class Executors:
    """The configured executor (made when first needed) and the isolation executor."""

    def __init__(self, settings: ExecutorSettings, wake: threading.Event, *, scratch: Path) -> None:
        self.settings = settings
        self.wake = wake
        self.scratch = scratch
        self._configured: Executor | None = None
        self._isolated: Executor | None = None

    def configured(self) -> Executor:
        """The configured executor, started with the first shot."""
        if self._configured is None:
            self._configured = make_executor(self.settings, self.wake, scratch=self.scratch)
            log.info(
                "analysis runs %s: %s",
                self._configured.kind,
                ", ".join(self._configured.workers()) or "no worker yet",
            )
        return self._configured

    def isolation(self) -> Executor:
        """The executor of shots analysed alone, started with the first such shot."""
        if self._isolated is None:
            self._isolated = IsolatedExecutor(self.wake, timeout_s=ISOLATED_TIMEOUT_S)
        return self._isolated

    @property
    def isolated(self) -> Executor | None:
        """The isolation executor, if started."""
        return self._isolated

    def _started(self) -> tuple[Executor, ...]:
        return tuple(e for e in (self._configured, self._isolated) if e is not None)

    @property
    def dask(self) -> bool:
        """Whether the configured executor is started and a Dask one."""
        return self._configured is not None and self._configured.kind == "dask"

    def capacity(self) -> int:
        """Shots in flight at most on the configured executor."""
        if self._configured is None:
            return self.settings.window()  # (started with the first shot)
        return self._configured.capacity

    def tick(self) -> None:
        for executor in self._started():
            executor.tick()

    def finished(self) -> list[Finished]:
        """What the executors have finished since they were last asked."""
        finished: list[Finished] = []
        for executor in self._started():
            finished.extend(executor.finished())
        return finished

    def submit(
        self,
        shots: InHand,
        path: Path,
        task: ShotTask,
        *,
        job_id: str,
        daemon_deaths: int,
        deaths: ShotDeaths,
    ) -> None:
        """Submit the task of the claimed address file *path* (a shot of *job_id* on which
        the daemon died *daemon_deaths* times) to the executor it belongs on, and record it
        in flight; with ``inline``, a death of the daemon meanwhile counts (*deaths*)."""
        name = path.name
        executor = self.configured()
        if name in shots.suspects:
            self._alone(shots, path, task)
            return
        if executor.runs_here:
            if daemon_deaths:
                for_job(log, job_id).warning(
                    "the daemon died on %s before: analysing it in a process of its own", name
                )
                self._alone(shots, path, task)
                return
            deaths.running_here(name)  # a death of the daemon now is the shot's
            executor.submit(task)  # it runs now, in this process
            shots.flights[name] = Flight(path, task, executor)
            deaths.ran_here(name)
            return
        executor.submit(task)  # (the executor's trouble raises WorkersUnavailable: it waits)
        shots.flights[name] = Flight(path, task, executor)
        if name in shots.submitted:
            shots.again.add(name)  # an earlier run's work copy may be left: tidied after
        shots.submitted.add(name)

    def _alone(self, shots: InHand, path: Path, task: ShotTask) -> None:
        executor = self.isolation()
        executor.submit(task)
        shots.flights[path.name] = Flight(path, task, executor)
        shots.again.add(path.name)

    def drop_lost(self, shots: InHand) -> None:
        """Close a Dask executor whose scheduler is lost; its shots wait for the next one."""
        executor = self._configured
        if executor is None or executor.kind != "dask":
            return
        self._configured = None
        shots.send_back(executor)
        with contextlib.suppress(Exception):  # it is broken already
            executor.close()

    def close(self) -> None:
        for executor in self._started():
            executor.close()
        self._configured = self._isolated = None
