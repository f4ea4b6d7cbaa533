"""The configuration's sections: one frozen dataclass each, with its defaults.

Each class holds one section of the YAML configuration (``limits``, ``intake``, ``checks``,
``apparatus``, ``lab`` with its ``runmanager`` and ``globals``, ``result`` with its
``executor``, ``queue``, ``notify``, ``metrics``, ``gateway``, ``retention``), as checked by
``schemas/config.schema.json``; :mod:`spooler.core.settings` reads the file into them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "EXECUTOR_KINDS",
    "ApparatusSettings",
    "CheckSettings",
    "ExecutorSettings",
    "GatewaySettings",
    "GlobalNames",
    "IntakeSettings",
    "LabSettings",
    "Limits",
    "MetricsSettings",
    "NotifySettings",
    "QueueSettings",
    "ResultSettings",
    "RetentionSettings",
    "RunmanagerSettings",
]


@dataclass(frozen=True, kw_only=True)
class Limits:
    job_file_max_bytes: int = 1 << 20
    instructions_per_experiment_max: int = 10_000
    json_depth_max: int = 16
    address_file_max_bytes: int = 64 * 1024
    # A daemon that died this many times while handling one item (a job file, a shot) gives
    # that item up (quarantine, its job ERROR) instead of starting it again.
    item_deaths_max: int = 3
    # The virtual machine's limit (it evolves the atoms exactly): the most states a spin
    # experiment's loaded wires may span. None: no limit (a real machine).
    exact_states_max: int | None = None


@dataclass(frozen=True, kw_only=True)
class IntakeSettings:
    observer: str = "inotify"
    polling_interval_s: float = 1.0
    rescan_interval_s: float = 10.0
    batch_max_jobs: int = 256


@dataclass(frozen=True, kw_only=True)
class CheckSettings:
    """Pre-run checks: floors below which no new job is engaged."""

    shots_free_min_bytes: int = 1 << 30
    store_free_min_bytes: int = 1 << 30


@dataclass(frozen=True, kw_only=True)
class ApparatusSettings:
    header: Path
    object: str = "apparatus"


@dataclass(frozen=True, kw_only=True)
class RunmanagerSettings:
    host: str = "localhost"
    port: int = 42523
    timeout_s: float = 10.0


@dataclass(frozen=True, kw_only=True)
class GlobalNames:
    """The globals of the apparatus' globals file that labspool sets per experiment."""

    job_id: str = "labspool_job_id"
    experiment_name: str = "labspool_experiment"
    shot: str = "labspool_shot"  # set to range(shots); its expansion must be 'outer'
    seed: str = "labspool_seed"
    attempt: str = "labspool_attempt"  # the job's attempt number (optional in the apparatus)


@dataclass(frozen=True, kw_only=True)
class LabSettings:
    kind: str = "none"
    # Pipelined engagement: while the last shots of the job on the machine run, the next
    # jobs are engaged (compiled, queued in BLACS) so that BLACS's queue never runs dry.
    # At most look_ahead_jobs jobs are engaged behind the one whose shots run, and a job is
    # engaged ahead only while at most look_ahead_shots shots of the jobs before it are still
    # to be made. look_ahead_jobs 0: a job is engaged only once the one before it finished.
    look_ahead_jobs: int = 2
    look_ahead_shots: int = 10
    retry_interval_s: float = 2.0
    retry_interval_max_s: float = 60.0
    # An experiment submitted without confirmation (a crash, a time-out) is submitted again
    # only if none of its shot files appeared this long after it was submitted.
    resubmit_after_s: float = 30.0
    # The machine's health (spooler.core.health) is looked at this often, jobs waiting or not.
    health_interval_s: float = 2.0
    # An engaged experiment with shots still to make, none of them in BLACS's queue or
    # running, and no new shot file or shot for this long, lost its shots (BLACS or
    # runmanager died): its missing shots are made again (spooler.pipeline.recovery).
    stalled_after_s: float = 30.0
    # BLACS running one shot for longer than this is stuck (a device that never finishes its
    # part of the shot; BLACS times out only programming, after 5 min): the machine is not
    # operational (jobs wait, a person is told) until the shot ends or BLACS is restarted.
    shot_stuck_after_s: float = 600.0
    labscript_profile: Path | None = None
    runmanager: RunmanagerSettings = field(default_factory=RunmanagerSettings)
    globals: GlobalNames = field(default_factory=GlobalNames)


EXECUTOR_KINDS = ("inline", "processes", "dask")


@dataclass(frozen=True, kw_only=True)
class ExecutorSettings:
    """Where single-shot analysis runs (:mod:`result.executors`)."""

    # inline: in the result daemon's process; processes: a pool of worker processes on this
    # machine; dask: an existing Dask cluster (scheduler) or a LocalCluster of `workers`.
    kind: str = "processes"
    workers: int | None = None  # processes / dask LocalCluster; None: the number of cores
    scheduler: str | None = None  # dask: "tcp://host:8786" (or tls://); None: a LocalCluster
    # Shots in flight at most per worker (a bounded window, not every shot at once).
    in_flight_per_worker: int = 8
    # processes: a shot whose analysis takes longer is stopped (its worker killed) and
    # counts as a death on it, like a crash.
    task_timeout_s: float = 300.0

    def worker_count(self) -> int:
        if self.kind == "inline":
            return 1
        return self.workers or max(1, len(os.sched_getaffinity(0)))

    def window(self) -> int:
        """Shots in flight at most (a Dask cluster's own count of threads decides there,
        once connected)."""
        if self.kind == "inline":
            return 1
        return self.worker_count() * self.in_flight_per_worker


@dataclass(frozen=True, kw_only=True)
class ResultSettings:
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    routines: tuple[str, ...] = ("result.routines.singlequdit:count_atoms",)
    memory_routine: str | None = None
    # Run once a job is complete, after its CSVs and before its result JSON: each returns
    # files (a picture of the job) for the job's store folder (result/multishot.py).
    multishot_routines: tuple[str, ...] = ("result.routines.picture:draw_job",)
    shots_timeout_s: float = 600.0
    archive_retry_interval_s: float = 2.0
    archive_retry_interval_max_s: float = 60.0
    batch_max_shots: int = 64

    def memory_routine_name(self, routines: tuple[str, ...] | None = None) -> str | None:
        """The routine whose ``memory`` result is a shot's memory entry: ``memory_routine``,
        else the last of ``routines``. With other *routines* (reprocessing), that one if it
        is among them, else their last."""
        names = [spec.rpartition(":")[2] for spec in self.routines]
        configured = self.memory_routine or (names[-1] if names else None)
        if routines is None:
            return configured
        others = [spec.rpartition(":")[2] for spec in routines]
        return configured if configured in others else (others[-1] if others else None)


@dataclass(frozen=True, kw_only=True)
class QueueSettings:
    # fifo: jobs in the order they arrived; fair: users interleaved by their waiting jobs
    # (spooler.pipeline.fairshare), so that one user's thousand jobs do not hold up another's one
    policy: str = "fifo"


@dataclass(frozen=True, kw_only=True)
class NotifySettings:
    """Notifications to the lab's channels (spooler.pipeline.notifications, through apprise)."""

    urls: tuple[str, ...] = ()  # apprise URLs; none: nothing is sent
    # at most this many messages an hour; what comes beyond waits and goes out as one digest
    messages_per_hour_max: int = 30
    retry_interval_s: float = 30.0
    retry_interval_max_s: float = 900.0
    give_up_after_s: float = 86400.0  # a message not delivered by then is logged and dropped
    send_timeout_s: float = 10.0


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """The Prometheus endpoint of the spooler daemon (spooler.core.metrics)."""

    listen: str | None = None  # host:port; None: none (the gateway serves /metrics as well)

    @property
    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.removeprefix("[").removesuffix("]"), int(port)


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """The HTTP gateway of the qiskit-cold-atom client, and its users' default limits (a
    user's own limits, set by ``labspool user add``, override these:
    :mod:`spooler.gateway.users`)."""

    listen: str = "127.0.0.1:8090"  # host:port ([v6-address]:port)
    # the name the client looks the backend up by; the configuration's default: `backend`
    backend_name: str
    body_max_bytes: int = 2 << 20  # a request's body, at most
    queued_jobs_max: int = 100  # a user's jobs waiting (not finished), at most
    requests_per_s: float = 20.0  # a user's sustained rate of requests
    job_bytes_max: int  # a user's job file, at most; the default: limits.job_file_max_bytes
    # a user's jobs posted, in bytes a second on average (bursts of twice that, and at least
    # one job of job_bytes_max): the spooler's admission work one user can ask for
    post_bytes_per_s: int = 256 << 10
    # The server's guards (spooler.gateway.server): a connection has this long to send the
    # headers of its next request, from when it opens and after each answer
    idle_timeout_s: float = 5.0
    connections_per_client_max: int = 32  # open from one address (not the proxy's), at most
    connections_max: int = 4096  # open in all, at most
    requests_in_flight_max: int = 256  # answered at once, at most; beyond: 503 with JSON
    # a reverse proxy's addresses: not capped per address (the proxy caps its clients)
    proxy_addresses: tuple[str, ...] = ("127.0.0.1", "::1")

    @property
    def address(self) -> tuple[str, int]:
        """``listen`` as (host, port); an IPv6 address without its brackets."""
        host, _, port = self.listen.rpartition(":")
        return host.removeprefix("[").removesuffix("]"), int(port)


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    """How long ``labspool prune`` keeps the files of jobs that have ended (DONE, ERROR,
    CANCELLED), counted from when each ended, in days; None: for ever
    (:mod:`spooler.core.retention`). The job store keeps every job, its history and its
    shots' ledger rows whatever these say, and result files are never pruned."""

    # processed/: an address file per shot; the ledger holds all they said
    processed_addresses_days: float | None = 30.0
    # status/<job_id>.json: `labspool status` and the gateway answer from the store without it
    finished_status_files_days: float | None = None
    # jobs/<job_id>/ of DONE jobs (the accepted job.json and its rendered experiment files);
    # those of ERROR and CANCELLED jobs are kept: `labspool requeue` runs them from it
    rendered_jobs_days: float | None = None
    # rejected/: the job files refused (their jobs' error_message stays in the store)
    rejected_job_files_days: float | None = 90.0
    # quarantine/: given-up items with their reason files (of ended jobs, or of no job)
    quarantine_days: float | None = None
