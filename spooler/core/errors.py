"""The small exception hierarchy of labspool.

Messages are written for the physicist who submitted the job or runs the machine: they say
what is wrong and where, never only that something failed.
"""

from __future__ import annotations

from spooler.core.names import escaped

__all__ = [
    "ConfigError",
    "IllegalTransition",
    "JobRejected",
    "LabError",
    "LabRejected",
    "LabUnavailable",
    "LabspoolError",
    "RenderError",
    "SpoolerBusy",
    "describe_exception",
]


class LabspoolError(Exception):
    """Base class of every error labspool raises on purpose."""


class ConfigError(LabspoolError):
    """The configuration is missing, unreadable or invalid (the message names file and key)."""


class JobRejected(LabspoolError):
    """A job file is not acceptable; the message goes into the job's ``error_message``."""


class RenderError(JobRejected):
    """The experiment file could not be rendered safely (a defence behind validation)."""


class IllegalTransition(LabspoolError):
    """A state change that the job state machine does not allow."""


class SpoolerBusy(LabspoolError):
    """Another spooler already serves this folder tree."""


class LabError(LabspoolError):
    """Base class of errors reported by the lab (runmanager, BLACS)."""


class LabUnavailable(LabError):
    """The lab cannot be reached now; the job waits and the call is retried later."""


class LabRejected(LabError):
    """The lab refused the job (e.g. runmanager rejected a global); the job ends ERROR."""


_MESSAGE_MAX = 500  # characters of an exception's message in a status file or a log line


def describe_exception(exc: BaseException) -> str:
    """``<type>: <message>`` of an unexpected exception, short and printable."""
    text = escaped(str(exc).replace("\n", " ").strip()) or "(no message)"
    if len(text) > _MESSAGE_MAX:
        text = text[: _MESSAGE_MAX - 3] + "..."
    return f"{type(exc).__name__}: {text}"
