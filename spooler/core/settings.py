"""The one settings object: read from YAML once, validated by ``schemas/config.schema.json``.

Precedence for finding the file: ``--config PATH``, then ``$LABSPOOL_CONFIG``. Relative
folder paths are resolved against the folder of the configuration file.

The tree's layout (:class:`Folders`) is in :mod:`spooler.core.folders`, the dataclass of
each section in :mod:`spooler.core.configsections`; both are importable from here too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from spooler.core.configsections import (
    EXECUTOR_KINDS,
    ApparatusSettings,
    CheckSettings,
    ExecutorSettings,
    GatewaySettings,
    GlobalNames,
    IntakeSettings,
    LabSettings,
    Limits,
    MetricsSettings,
    NotifySettings,
    QueueSettings,
    ResultSettings,
    RetentionSettings,
    RunmanagerSettings,
)
from spooler.core.errors import ConfigError
from spooler.core.folders import RECOVERY_PREFIX, Folders
from spooler.core.resources import schema_path

__all__ = [
    "ENV_VAR",
    "EXECUTOR_KINDS",
    "RECOVERY_PREFIX",
    "ApparatusSettings",
    "CheckSettings",
    "ExecutorSettings",
    "Folders",
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
    "Settings",
    "find_config",
    "load_settings",
]

ENV_VAR = "LABSPOOL_CONFIG"


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
    retention: RetentionSettings = field(default_factory=RetentionSettings)
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
        retention=RetentionSettings(**raw.get("retention", {})),
        log_level=raw.get("logging", {}).get("level", "INFO"),
    )
