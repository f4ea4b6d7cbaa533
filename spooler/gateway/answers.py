"""The gateway's answers, in the qiskit-cold-atom client's protocol (API v2).

Every answer is a JSON object with a ``status``, errors too: the client reads ``status``
before it looks at the HTTP code. Two spellings matter to the released client (0.2.x):

- ``get_job_status`` answers the job's state in the status file's words (``INITIALIZING``,
  ``QUEUED``, ``RUNNING``, ``DONE``, ``ERROR``, ``CANCELLED``); an error of the request is
  ``ERROR``, which the client maps to its ``JobStatus.ERROR``;
- ``get_job_result`` answers the result document with ``"status": "finished"`` once the job
  is ``DONE``, and ``"status": "error"`` (lower case) for a job that ended ``ERROR`` or
  ``CANCELLED`` or a request it cannot answer: the client raises ``JobError`` with it instead
  of polling for ever. While the job runs it answers its state, and the client polls again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse, Response

from spooler.core.fsutil import read_regular_file
from spooler.core.health import Health
from spooler.core.timestamps import iso_time

__all__ = [
    "RESULT_MAX_BYTES",
    "Refused",
    "backend_status",
    "error",
    "job_answer",
    "read_result",
]

RESULT_MAX_BYTES = 64 << 20


class Refused(Exception):
    """A request refused with *response* (nothing written)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def job_answer(
    job_id: str | None, status: str, detail: str, error_message: str = "None", **extra: Any
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": status,
        "detail": detail,
        "error_message": error_message,
        **extra,
    }


def backend_status(
    backend_name: str, backend_version: str, health: Health, pending_jobs: int
) -> dict[str, Any]:
    """``get_backend_status``: the shape of the ecosystem's servers (sqooler's
    ``BackendStatusSchemaOut``, after qiskit's ``BackendStatus``, with
    ``last_queue_check``): the machine's health as the spooler last recorded it."""
    return {
        "backend_name": backend_name,
        "backend_version": backend_version,
        "operational": health.operational,
        "pending_jobs": pending_jobs,
        "status_msg": health.status_msg,
        "last_queue_check": iso_time(health.last_check),
    }


def error(
    code: int, message: str, *, job_id: str | None = None, status: str = "ERROR"
) -> JSONResponse:
    """A refused request: nothing was written."""
    return JSONResponse(
        job_answer(job_id, status, f"Refused: {message}", message), status_code=code
    )


def read_result(path: Path) -> dict[str, Any]:
    """The result document of a DONE job (raises OSError, ValueError or LabspoolError while
    it is missing or damaged: DONE is committed after the result is written)."""
    document = json.loads(read_regular_file(path, RESULT_MAX_BYTES, what="the result"))
    if not isinstance(document, dict):
        raise ValueError("the result is not a JSON object")
    return document
