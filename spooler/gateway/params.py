"""A request's parameters checked: short text without control characters, the backend, the job id.

What fails is refused before anything is read or written: 404 for another backend's name,
400 for a missing or malformed job id, each answered with the status word the endpoint's
client expects (``ERROR``, or ``error`` for ``get_job_result``).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from spooler.core.errors import LabspoolError
from spooler.core.jobid import JOB_ID_PATTERN
from spooler.core.strictjson import loads_strict
from spooler.gateway.answers import Refused, error

__all__ = ["PARAMETER_MAX_CHARS", "check_backend", "job_id_of", "text"]

PARAMETER_MAX_CHARS = 256
_JOB_ID = re.compile(JOB_ID_PATTERN)


def text(value: Any) -> str | None:
    """A request parameter as a short string without control characters, or None."""
    if not isinstance(value, str) or not value or len(value) > PARAMETER_MAX_CHARS:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    return value


def check_backend(request: Request, backend: str, *, status: str = "ERROR") -> None:
    """Refuse (404) a request for another backend than *backend*."""
    name = request.path_params["backend"]
    if name != backend:
        raise Refused(error(404, f"no backend {name[:64]!r} here", status=status))


def job_id_of(request: Request, *, status: str = "ERROR") -> str:
    """The request's ``job_id`` (in the query, or in its ``json`` parameter)."""
    raw: Any = request.query_params.get("job_id")
    if raw is None and "json" in request.query_params:
        try:
            parsed = loads_strict(request.query_params["json"].encode(), max_depth=4)
        except (ValueError, LabspoolError):
            raise Refused(error(400, "the 'json' parameter is not JSON", status=status)) from None
        raw = parsed.get("job_id") if isinstance(parsed, dict) else None
    job_id = text(raw)
    if job_id is None or _JOB_ID.fullmatch(job_id) is None:
        raise Refused(error(400, "a job_id is required", status=status))
    return job_id
