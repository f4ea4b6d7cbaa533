"""The live page: ``/`` (the queue, or a user's own jobs) and ``/jobs/<job_id>`` (one job).

The page is three static files (:data:`STATIC`): an HTML shell, a script and a style sheet,
served with a content security policy that allows nothing but them (no inline script, no
other origin), so nothing a job carries can run in the browser; the script shows every
value as text, never as markup. It signs in with the gateway's own users: the name and
token typed into its form (or given once in the address's fragment, ``#user=U&token=T``,
which never reaches the server or its logs), kept in the tab's session storage and sent
as ``Authorization: Bearer U:T``.

It updates itself by short polling (every :data:`REFRESH_S` seconds) of three JSON
endpoints, each answered from the job store at the moment of asking:

- ``GET /ui/overview[?offset=K]``: the machine's health (``machine``: operational or not,
  why, since when; everybody sees it: it explains why jobs wait), for an operator the jobs
  that wait or run, :data:`ACTIVE_SHOWN` at a time in queue order (running, queued, being
  admitted) from the *K*-th (user, state, position, progress, estimates, the last note of
  its detail) and how many there are (``active``: in all, per state, per user), the last
  :data:`FINISHED_SHOWN` finished, the pause state, the last :data:`ERRORS_SHOWN` errors
  and the last :data:`QUARANTINED_SHOWN` items the daemons gave up (the quarantine's
  reasons); for a user the same of their own jobs (no quarantine: its items are anybody's).
  What a poll costs grows with the jobs shown, not with the queue: only the shown jobs are
  read and estimated (:func:`spooler.core.estimates.estimate_shown`), a user's through the
  index on their name (one with no jobs pays the same behind 3,000 queued jobs as behind
  30), and the queue ahead of a job is counted by SQL, never read;
- ``GET /ui/jobs/<job_id>``: the job's status document (detail, history), a summary of
  its result when it is DONE, whether it has a picture, and the machine's health;
- ``GET /ui/jobs/<job_id>/picture``: the job's picture (``sds/<job_id>/<job_id>.png``).

Another user's job is answered exactly like one that does not exist, as in the API. What
the overview shows of the store is read by :mod:`.overview`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spooler.core.errors import LabspoolError
from spooler.core.estimates import estimate_shown
from spooler.core.fsutil import read_regular_file
from spooler.core.health import read_health
from spooler.core.pause import read_pause
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.statusfile import status_document
from spooler.core.statusview import machine_document
from spooler.core.store import JobRecord, JobStore
from spooler.core.timestamps import iso_time
from spooler.gateway.answers import Refused, error, read_result
from spooler.gateway.overview import (
    active_jobs,
    active_summary,
    finished_jobs,
    job_row,
    public_pause,
    quarantined_items,
)
from spooler.gateway.users import User

__all__ = ["STATIC", "LivePage"]

STATIC = Path(__file__).with_name("static")
REFRESH_S = 2.0
ACTIVE_SHOWN = 100  # jobs that wait or run shown at once, in queue order; the rest counted
OFFSET_MAX = 10**9
FINISHED_SHOWN = 30
ERRORS_SHOWN = 10
QUARANTINED_SHOWN = 10
COUNTS_SHOWN = 8
PICTURE_MAX_BYTES = 16 << 20

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_FILES = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
}

Authenticate = Callable[[Mapping[str, Any]], User]


class LivePage:
    """The page's routes, over the gateway's store; *authenticate* checks a caller's
    ``username`` and ``token`` (and their rate) as the API does, raising :class:`Refused`."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        authenticate: Authenticate,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.authenticate = authenticate
        self.now = now
        self.shell = (STATIC / "index.html").read_bytes()
        self.files = {name: (STATIC / name).read_bytes() for name in _FILES}

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/jobs/{job_id}", self.page, methods=["GET"]),
            Route("/static/{name}", self.static, methods=["GET"]),
            Route("/ui/overview", self.overview, methods=["GET"]),
            Route("/ui/jobs/{job_id}", self.job, methods=["GET"]),
            Route("/ui/jobs/{job_id}/picture", self.picture, methods=["GET"]),
        ]

    # -- the files ------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        return Response(self.shell, media_type="text/html; charset=utf-8", headers=_headers())

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.files:
            return error(404, "no such file")
        return Response(self.files[name], media_type=_FILES[name], headers=_headers())

    # -- the data -------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        try:
            caller = self._caller(request)
            offset = _offset(request)
        except Refused as refused:
            return refused.response
        now = self.now()
        user = None if caller.operator else caller.name
        with self.store.snapshot() as reader:
            counts = reader.active_counts(user)
            active = active_jobs(reader, user, counts, offset, ACTIVE_SHOWN)
            records = active + finished_jobs(reader, user, FINISHED_SHOWN)
            places = reader.queue_places(r.job_id for r in active if r.state is JobState.QUEUED)
            estimates = estimate_shown(reader, now, records, places)
            jobs = [job_row(r, places, estimates, now) for r in records]
            pause = read_pause(reader)
            errors = finished_jobs(reader, user, ERRORS_SHOWN, JobState.ERROR)
            machine = machine_document(read_health(reader, now))
        folder = self.settings.folders.quarantine
        quarantined = quarantined_items(folder, QUARANTINED_SHOWN) if caller.operator else []
        return _json(
            {
                "status": "OK",
                "user": caller.name,
                "operator": caller.operator,
                "backend": self.settings.backend,
                "at": iso_time(now),
                "refresh_s": REFRESH_S,
                "machine": machine,
                "paused": pause is not None and pause.active(now),
                "pause": None
                if pause is None
                else (pause.describe() if caller.operator else public_pause(pause.reason)),
                "jobs": jobs,
                "active": active_summary(
                    counts, offset, len(active), ACTIVE_SHOWN, everybody=caller.operator
                ),
                "errors": [
                    {
                        "job_id": r.job_id,
                        "user": r.submitter,
                        "error_message": r.error_message or "",
                        "at": iso_time(r.updated_at),
                    }
                    for r in errors
                ],
                "quarantined": quarantined,
            }
        )

    async def job(self, request: Request) -> Response:
        try:
            caller = self._caller(request)
            record = self._visible(caller, request.path_params["job_id"])
        except Refused as refused:
            return refused.response
        now = self.now()
        with self.store.snapshot() as reader:
            document = status_document(reader, record, now=now)
            machine = machine_document(read_health(reader, now))
        done = record.state is JobState.DONE  # a result may be large: read beside the loop
        result = await asyncio.to_thread(self._result, record) if done else None
        return _json(
            {
                **document,
                "result": result,
                "picture": self._picture_path(record.job_id).is_file(),
                "machine": machine,
            }
        )

    async def picture(self, request: Request) -> Response:
        try:
            caller = self._caller(request)
            record = self._visible(caller, request.path_params["job_id"])
        except Refused as refused:
            return refused.response
        try:
            data = await asyncio.to_thread(
                read_regular_file,
                self._picture_path(record.job_id),
                PICTURE_MAX_BYTES,
                what="the picture",
            )
        except (OSError, LabspoolError):
            return error(404, f"job {record.job_id} has no picture", job_id=record.job_id)
        return Response(data, media_type="image/png", headers=_headers())

    # -- helpers --------------------------------------------------------------------------

    def _caller(self, request: Request) -> User:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        name, _, token = credentials.strip().partition(":")
        if scheme.lower() != "bearer":
            name = token = ""
        return self.authenticate({"username": name, "token": token})

    def _visible(self, caller: User, job_id: str) -> JobRecord:
        record = self.store.read.get(job_id) if len(job_id) <= 128 else None
        if record is None or not caller.sees(record.submitter):
            raise Refused(error(404, f"no job {job_id[:128]}"))  # as if it did not exist
        return record

    def _picture_path(self, job_id: str) -> Path:
        return self.settings.folders.picture(job_id)

    def _result(self, record: JobRecord) -> dict[str, Any] | None:
        path = self.settings.folders.results / f"{record.job_id}.json"
        try:
            document = read_result(path)
            return {
                "experiments": [_experiment_summary(e) for e in document["results"]],
                "success": bool(document.get("success")),
            }
        except (OSError, ValueError, LabspoolError, KeyError, TypeError):
            return None  # DONE is committed after the result is written: a moment's gap


def _offset(request: Request) -> int:
    raw = request.query_params.get("offset", "0")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or int(raw) > OFFSET_MAX:
        raise Refused(error(400, "offset is a whole number of jobs, from 0"))
    return int(raw)


def _experiment_summary(experiment: Any) -> dict[str, Any]:
    header = experiment.get("header") or {}
    counts = (experiment.get("data") or {}).get("counts") or {}
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:COUNTS_SHOWN]
    return {
        "name": str(header.get("name", "")),
        "shots": experiment.get("shots"),
        "counts": [[str(outcome), int(n)] for outcome, n in top],
        "outcomes": len(counts),
    }


def _headers() -> dict[str, str]:
    return dict(_SECURITY_HEADERS)


def _json(content: dict[str, Any]) -> JSONResponse:
    return JSONResponse(content, headers=_headers())
