"""The one settings object: read from YAML once, validated by ``schemas/config.schema.json``.

Precedence for finding the file: ``--config PATH``, then ``$LABSPOOL_CONFIG``. Relative
folder paths are resolved against the folder of the configuration file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from spooler.core.errors import ConfigError
from spooler.core.names import picture_name
from spooler.core.resources import schema_path

__all__ = [
    "ENV_VAR",
    "ApparatusSettings",
    "CheckSettings",
    "Folders",
    "GatewaySettings",
    "GlobalNames",
    "IntakeSettings",
    "LabSettings",
    "Limits",
    "MetricsSettings",
    "NotifySettings",
    "ResultSettings",
    "RunmanagerSettings",
    "Settings",
    "find_config",
    "load_settings",
]

ENV_VAR = "LABSPOOL_CONFIG"
RECOVERY_PREFIX = "recovery-"  # the folders of shots made again (spooler.pipeline.recovery)
_RECOVERY = re.compile(r"recovery-[1-9][0-9]{0,5}")


@dataclass(frozen=True, kw_only=True)
class Folders:
    dump: Path
    staging: Path
    status: Path
    results: Path
    jobs: Path
    rejected: Path
    state: Path
    shots: Path
    addresses: Path
    processed: Path
    sds: Path
    control: Path
    quarantine: Path

    @property
    def claimed(self) -> Path:
        """Job files taken out of the dump folder and not yet filed (spooler only)."""
        return self.state / "claimed"

    @property
    def result_claimed(self) -> Path:
        """Address files the result daemon has taken and not yet filed to processed/."""
        return self.state / "result-claimed"

    @property
    def database(self) -> Path:
        return self.state / "labspool.sqlite3"

    def shot_folder(self, job_id: str, attempt: int, experiment: str, recovery: int = 0) -> Path:
        """Where runmanager writes an experiment's shots (later attempts in their own folder;
        the shots a recovery makes again in ``recovery-<n>`` inside it:
        spooler.pipeline.recovery)."""
        job = self.shots / job_id
        folder = job / experiment if attempt == 1 else job / f"attempt-{attempt}" / experiment
        return folder if recovery == 0 else folder / f"{RECOVERY_PREFIX}{recovery}"

    def shot_folders(
        self, job_id: str, attempt: int, experiment: str, recoveries: int
    ) -> list[Path]:
        """Every folder an experiment's shots were made in: its own and its recoveries'."""
        return [self.shot_folder(job_id, attempt, experiment, n) for n in range(recoveries + 1)]

    def is_shot_folder(self, folder: Path, job_id: str, attempt: int, experiment: str) -> bool:
        """*folder* is the experiment's shot folder or one of its recoveries'."""
        base = self.shot_folder(job_id, attempt, experiment)
        return folder == base or (
            folder.parent == base and _RECOVERY.fullmatch(folder.name) is not None
        )

    def shot_owner(self, folder: Path) -> tuple[str, int] | None:
        """The (job id, attempt) whose shots a folder under ``shots`` holds (None: not one)."""
        try:
            parts = folder.relative_to(self.shots).parts
        except ValueError:
            return None
        if len(parts) >= 3 and parts[1].startswith("attempt-") and parts[1][8:].isdigit():
            return parts[0], int(parts[1][8:])
        return (parts[0], 1) if len(parts) >= 2 else None

    def stored_job(self, job_id: str) -> Path:
        """The job's folder on the store (SDS): a folder of shots per experiment, the CSVs,
        the multi-shot routines' files (the picture: :meth:`picture`)."""
        return self.sds / job_id

    def stored_shot(self, job_id: str, experiment: str, shot_name: str) -> Path:
        """Where a shot is archived on the store."""
        return self.stored_job(job_id) / experiment / shot_name

    def picture(self, job_id: str) -> Path:
        """The job's picture, drawn by ``result.routines.picture`` once the job is done."""
        return self.stored_job(job_id) / picture_name(job_id)

    def as_dict(self) -> dict[str, Path]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def create(self) -> None:
        for path in (*self.as_dict().values(), self.claimed):
            path.mkdir(parents=True, exist_ok=True)


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
class Settings:
    path: Path
    backend: str
    folders: Folders
    limits: Limits
    intake: IntakeSettings
    apparatus: ApparatusSettings
    lab: LabSettings
    gateway: GatewaySettings
    queue: QueueSettings = field(default_factory=QueueSettings)
    result: ResultSettings = field(default_factory=ResultSettings)
    checks: CheckSettings = field(default_factory=CheckSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    log_level: str = "INFO"


_DEFAULT_FOLDERS = {name: name for name in Folders.__dataclass_fields__}


@cache
def _config_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(schema_path("config.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def find_config(explicit: str | os.PathLike[str] | None) -> Path:
    """The configuration file from ``--config`` or ``$LABSPOOL_CONFIG``."""
    chosen = explicit if explicit is not None else os.environ.get(ENV_VAR)
    if not chosen:
        raise ConfigError(
            f"no configuration given: pass --config PATH or set {ENV_VAR} "
            "(`labspool init DIR` writes one)"
        )
    return Path(chosen).expanduser()


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read, validate and freeze the configuration at *path*."""
    path = Path(path).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    lab = raw.get("lab") if isinstance(raw, dict) else None
    if isinstance(lab, dict) and "max_engaged_jobs" in lab:
        raise ConfigError(
            f"{path}: lab.max_engaged_jobs: replaced by lab.look_ahead_jobs (jobs engaged behind "
            "the one whose shots run; 0 engages a job only once the one before it finished) "
            "and lab.look_ahead_shots"
        )
    error = jsonschema.exceptions.best_match(_config_validator().iter_errors(raw))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"{path}: {key}: {error.message}")
    settings = _build(path, raw)
    _check_gateway(path, settings)
    return settings


def _check_gateway(path: Path, settings: Settings) -> None:
    """What the schema cannot say about the gateway section: the port's range, and that a
    job it takes is one the spooler would read."""
    gateway = settings.gateway
    if not 1 <= gateway.address[1] <= 65535:
        raise ConfigError(f"{path}: gateway.listen: port {gateway.address[1]} is not 1 to 65535")
    if gateway.job_bytes_max > settings.limits.job_file_max_bytes:
        raise ConfigError(
            f"{path}: gateway.job_bytes_max: {gateway.job_bytes_max} is above "
            f"limits.job_file_max_bytes ({settings.limits.job_file_max_bytes}): the spooler "
            "would refuse such a job"
        )


def _notify_settings(raw: dict[str, Any]) -> NotifySettings:
    values = dict(raw)
    if "urls" in values:
        values["urls"] = tuple(values["urls"])
    return NotifySettings(**values)


def _result_settings(raw: dict[str, Any]) -> ResultSettings:
    values = dict(raw)
    if "executor" in values:
        values["executor"] = ExecutorSettings(**values["executor"])
    for key in ("routines", "multishot_routines"):
        if key in values:
            values[key] = tuple(values[key])
    return ResultSettings(**values)


def _build(path: Path, raw: dict[str, Any]) -> Settings:
    base = path.parent

    def resolve(value: str) -> Path:
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else base / candidate

    folders = {**_DEFAULT_FOLDERS, **raw.get("folders", {})}
    apparatus = raw.get("apparatus", {})
    lab = dict(raw.get("lab", {}))
    runmanager = RunmanagerSettings(**lab.pop("runmanager", {}))
    global_names = GlobalNames(**lab.pop("globals", {}))
    profile = lab.pop("labscript_profile", None)
    limits = Limits(**raw.get("limits", {}))
    gateway = dict(raw.get("gateway", {}))
    gateway.setdefault("backend_name", raw["backend"])
    gateway.setdefault("job_bytes_max", limits.job_file_max_bytes)
    for name in ("requests_per_s", "idle_timeout_s"):
        if name in gateway:
            gateway[name] = float(gateway[name])
    if "proxy_addresses" in gateway:
        gateway["proxy_addresses"] = tuple(gateway["proxy_addresses"])
    return Settings(
        path=path,
        backend=raw["backend"],
        folders=Folders(**{name: resolve(value) for name, value in folders.items()}),
        limits=limits,
        intake=IntakeSettings(**raw.get("intake", {})),
        apparatus=ApparatusSettings(
            header=resolve(apparatus.get("header", "apparatus/header.py")),
            object=apparatus.get("object", "apparatus"),
        ),
        lab=LabSettings(
            runmanager=runmanager,
            globals=global_names,
            labscript_profile=None if profile is None else resolve(profile),
            **lab,
        ),
        gateway=GatewaySettings(**gateway),
        queue=QueueSettings(**raw.get("queue", {})),
        result=_result_settings(raw.get("result", {})),
        checks=CheckSettings(**raw.get("checks", {})),
        notify=_notify_settings(raw.get("notify", {})),
        metrics=MetricsSettings(**raw.get("metrics", {})),
        log_level=raw.get("logging", {}).get("level", "INFO"),
    )
