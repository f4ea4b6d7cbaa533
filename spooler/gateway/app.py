"""``labspool web``: the qiskit-cold-atom client's HTTP API (v2) in front of one labspool tree.

Routes (``<backend>`` is the tree's backend; any other name is answered 404):

- ``GET /api/v2/backends``: qlued's shape, a JSON list of the served backends' configurations
  (one: what ``get_config`` answers), with the credentials of ``get_config``;
- ``GET /api/v2/<backend>/get_config``: the configuration the client builds its backend from
  (:func:`spooler.gateway.clientconfig.client_configuration`);
- ``POST /api/v2/<backend>/post_job``: a JSON body ``{"job": "<the job as a JSON string>",
  "username": U, "token": T}``; the job goes into the dump folder through the same atomic
  submission as ``labspool submit`` (:mod:`spooler.core.submission`), named
  ``file_<id>-<user>.json`` so that the spooler records its user; the id is the gateway's;
- ``GET /api/v2/<backend>/get_backend_status``: the machine's health as the ecosystem's
  servers answer it (:func:`.answers.backend_status`): operational or not, why, the jobs
  waiting (QUEUED and RUNNING), when the machine was last looked at;
- ``GET /`` and ``/jobs/<job_id>``: the live page (:mod:`.page`);
- ``GET /api/v2/<backend>/get_job_status?job_id=J`` (or ``json={"job_id": J}``, as the
  client's ``error_message()`` sends it) and ``get_job_result``: see :mod:`.answers`.

Every request carries ``username`` and ``token`` (the query, or the body of ``post_job``),
``get_config`` too. A user sees only their own jobs: another user's job is answered exactly
like one that does not exist; an operator sees every job. What is refused is refused before
anything is written, with a JSON answer and the right code: 400 (malformed, or a body cut
short), 401 (no or a wrong user or token), 404 (unknown backend or job, or a path with a
trailing slash: never a redirect), 408 (a body too slow to arrive), 413 (a body or job too
large), 429 (too many requests, bytes of jobs a second, or waiting jobs), 503 (the
server's guards: :mod:`.server`). ``post_job``'s body is read flat (:mod:`.envelope`); its
quota is counted and the job submitted under the user's lock. A status answer is the status
file, or the store's record while the file lags behind it, so that it is right at every
instant.

The gateway only reads the store and the status and result files the daemons write, and
writes only job files into the dump folder: it runs as its own process, beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spooler.core.backends import get_backend
from spooler.core.errors import JobRejected, LabspoolError
from spooler.core.fsutil import read_regular_file
from spooler.core.health import read_health
from spooler.core.jobid import JOB_ID_PATTERN, new_job_id, parse_job_file_name
from spooler.core.notify import Notifier
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobRecord, JobStore
from spooler.core.strictjson import loads_strict
from spooler.core.submission import JobIdTaken, submit_job
from spooler.gateway.answers import Refused, backend_status, error, job_answer, read_result
from spooler.gateway.clientconfig import client_configuration
from spooler.gateway.envelope import EnvelopeError, read_flat_object
from spooler.gateway.page import LivePage
from spooler.gateway.ratelimit import RateLimiter
from spooler.gateway.users import User, Users

__all__ = ["UserDirectory", "make_app"]

PARAMETER_MAX_CHARS = 256
BODY_TIMEOUT_S = 10.0
ADDRESS_USERS = 4  # bodies from one address: as many bytes a second as this many users post
USES_FLUSH_S = 5.0  # how often the users' last uses are written (user list shows them)
_JOB_ID = re.compile(JOB_ID_PATTERN)
log = logging.getLogger(__name__)
WAITING = (JobState.INITIALIZING, JobState.QUEUED, JobState.RUNNING)


class UserDirectory(Protocol):
    def authenticate(self, name: str | None, token: str | None) -> User | None: ...

    def record_use(self, name: str, *, at: float | None = None) -> None: ...


def _text(value: Any) -> str | None:
    """A request parameter as a short string without control characters, or None."""
    if not isinstance(value, str) or not value or len(value) > PARAMETER_MAX_CHARS:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    return value


class Gateway:
    def __init__(
        self,
        settings: Settings,
        users: UserDirectory | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = JobStore(settings.folders.database)  # read; the users' last use written
        self.users: UserDirectory = Users(self.store, settings) if users is None else users
        # The users' last uses are written by a worker thread on a connection of its own,
        # never in the event loop: a write waits for the daemons' write lock (and fsyncs),
        # and the loop must answer meanwhile.
        self._uses: dict[str, float] = {}
        self._use_store: JobStore | None = None
        self._use_writer: UserDirectory | None = users
        self.backend = get_backend(settings.backend)
        self.name = settings.gateway.backend_name
        self.config = client_configuration(
            self.backend,
            backend_name=self.name,
            max_instructions=settings.limits.instructions_per_experiment_max,
        )
        self.limiter = RateLimiter(clock=clock)
        self.byte_limiter = RateLimiter(clock=clock)  # post_job's bytes, per user
        self.address_limiter = RateLimiter(clock=clock)  # post_job's bodies, per address
        self._quota_locks: dict[str, asyncio.Lock] = {}  # per user: count and submit as one

    # -- the requests ----------------------------------------------------------------------

    async def backends(self, request: Request) -> Response:
        """qlued's shape: a JSON list of the served backends' configurations (one here), each
        what ``get_config`` answers; the credentials of ``get_config``."""
        try:
            self.caller(request.query_params)
        except Refused as refused:
            return refused.response
        return JSONResponse([self.config])

    async def get_config(self, request: Request) -> Response:
        try:
            self._backend(request)
            self.caller(request.query_params)
        except Refused as refused:
            return refused.response
        return JSONResponse({**self.config, "status": "OK"})

    async def get_backend_status(self, request: Request) -> Response:
        """The machine's health and the jobs waiting for it (:func:`.answers.backend_status`)."""
        try:
            self._backend(request)
            self.caller(request.query_params)
        except Refused as refused:
            return refused.response
        with self.store.snapshot() as reader:
            health = read_health(reader, time.time())
            pending = reader.pending_jobs(self.settings.backend)
        version = str(self.config.get("backend_version", ""))
        return JSONResponse(backend_status(self.name, version, health, pending))

    async def post_job(self, request: Request) -> Response:
        try:
            self._backend(request)
            # credentials in the query are checked before the body is read; the released
            # client's are in the body, which is then read flat (:mod:`.envelope`)
            early = self.caller(request.query_params) if "token" in request.query_params else None
            body = await self._json_body(request)
            caller = early or self.caller(body)
            job = body.get("job")
            if not isinstance(job, str):
                raise Refused(error(400, "the body's 'job' must be the job as a JSON string"))
            data = job.encode("utf-8", errors="surrogatepass")
            limit = min(caller.job_bytes_max, self.settings.limits.job_file_max_bytes)
            if len(data) > limit:
                raise Refused(error(413, f"the job has {len(data)} bytes, over {limit}"))
            rate = self.settings.gateway.post_bytes_per_s
            if not self.byte_limiter.allow(caller.name, rate, 2 * rate, cost=len(data)):
                raise Refused(error(429, f"more than {rate} bytes of jobs a second"))
            job_id = await self._admit(caller, data)
        except Refused as refused:
            return refused.response
        return JSONResponse(job_answer(job_id, "INITIALIZING", "Got your json."))

    async def get_job_status(self, request: Request) -> Response:
        try:
            self._backend(request)
            caller = self.caller(request.query_params)
            job_id = self._job_id(request)
            answer = self._status(caller, job_id)
        except Refused as refused:
            return refused.response
        return JSONResponse(answer)

    async def get_job_result(self, request: Request) -> Response:
        try:
            self._backend(request, status="error")
            caller = self.caller(request.query_params, status="error")
            job_id = self._job_id(request, status="error")
            state = self._status(caller, job_id, status="error")
        except Refused as refused:
            return refused.response
        if state["status"] == "DONE":
            path = self.settings.folders.results / f"{job_id}.json"
            try:  # a result may be tens of MB: read and encoded beside the event loop
                body = await asyncio.to_thread(_finished_result, path)
            except (OSError, ValueError, LabspoolError):
                return JSONResponse(  # DONE is written after the result: a moment's gap
                    job_answer(job_id, "RUNNING", "The result is being written")
                )
            return Response(body, media_type="application/json")
        if state["status"] in ("ERROR", "CANCELLED"):
            message = state.get("error_message") or state["status"]
            if message == "None":
                message = f"the job ended {state['status']}"
            return JSONResponse(job_answer(job_id, "error", state.get("detail", ""), message))
        return JSONResponse(state)

    async def metrics(self, request: Request) -> Response:
        """``GET /metrics``: the labspool metrics for Prometheus (:mod:`spooler.core.metrics`).

        Unauthenticated, by choice: Prometheus scrapes without the users' tokens, and the
        numbers name no user and no job. The gateway listens on localhost; a reverse proxy
        that publishes it must not forward /metrics (README, "Metrics")."""
        from prometheus_client import CONTENT_TYPE_LATEST
        from starlette.concurrency import run_in_threadpool

        from spooler.core.metrics import Metrics

        if not hasattr(self, "_metrics"):  # its own store connection, opened at the 1st scrape
            self._metrics = Metrics(self.settings)
        body = await run_in_threadpool(self._metrics.exposition)  # reads the store: a thread
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def flush_uses(self) -> None:
        """Write the users' last uses noted since the last flush, in a worker thread (each
        at most once a minute per user: :meth:`spooler.gateway.users.Users.record_use`)."""
        pending, self._uses = self._uses, {}
        if pending:
            await asyncio.to_thread(self._write_uses, pending)

    def _write_uses(self, pending: dict[str, float]) -> None:
        try:
            if self._use_writer is None:
                self._use_store = JobStore(self.settings.folders.database)
                self._use_writer = Users(self._use_store, self.settings)
            for name, at in pending.items():
                self._use_writer.record_use(name, at=at)
        except (sqlite3.Error, OSError) as exc:  # only what `user list` shows: not fatal
            log.warning("the users' last uses were not written: %s", exc)

    def close(self) -> None:
        self.store.close()
        if self._use_store is not None:
            self._use_store.close()
        if hasattr(self, "_metrics"):
            self._metrics.close()

    # -- checks ---------------------------------------------------------------------------

    def _backend(self, request: Request, *, status: str = "ERROR") -> None:
        name = request.path_params["backend"]
        if name != self.backend.name:
            raise Refused(error(404, f"no backend {name[:64]!r} here", status=status))

    def caller(self, source: Any, *, status: str = "ERROR") -> User:
        name, token = _text(source.get("username")), _text(source.get("token"))
        caller = self.users.authenticate(name, token)
        if caller is None:
            raise Refused(error(401, "a valid username and token are required", status=status))
        self._uses[caller.name] = time.time()  # written by flush_uses
        if not self.limiter.allow(caller.name, caller.requests_per_s):
            raise Refused(
                error(
                    429,
                    f"more than {caller.requests_per_s:g} requests a second",
                    status=status,
                )
            )
        return caller

    def _job_id(self, request: Request, *, status: str = "ERROR") -> str:
        raw: Any = request.query_params.get("job_id")
        if raw is None and "json" in request.query_params:
            try:
                parsed = loads_strict(request.query_params["json"].encode(), max_depth=4)
            except (ValueError, LabspoolError):
                raise Refused(
                    error(400, "the 'json' parameter is not JSON", status=status)
                ) from None
            raw = parsed.get("job_id") if isinstance(parsed, dict) else None
        job_id = _text(raw)
        if job_id is None or _JOB_ID.fullmatch(job_id) is None:
            raise Refused(error(400, "a job_id is required", status=status))
        return job_id

    def _address_budget(self, request: Request) -> None:
        """Bodies announced from one client address (not a proxy's: uvicorn takes a proxied
        client's from X-Forwarded-For), at most :data:`ADDRESS_USERS` users' worth of
        ``post_bytes_per_s``: refused before they are read, as the user is known only after
        (the client's token is inside the body)."""
        host = request.client.host if request.client else None
        declared = request.headers.get("content-length", "")
        if host is None or host in self.settings.gateway.proxy_addresses:
            return
        rate = ADDRESS_USERS * self.settings.gateway.post_bytes_per_s
        cost = int(declared) if declared.isdigit() else 0
        if not self.address_limiter.allow(host, rate, 2 * rate, cost=cost):
            raise Refused(error(429, f"more than {rate} bytes of bodies a second from {host}"))

    async def _json_body(self, request: Request) -> dict[str, Any]:
        """The body as a flat JSON object (:mod:`.envelope`): at most ``body_max_bytes``,
        arrived within :data:`BODY_TIMEOUT_S`."""
        cap = self.settings.gateway.body_max_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            raise Refused(error(413, f"the body is over {cap} bytes"))
        self._address_budget(request)
        chunks: list[bytes] = []
        size = 0

        async def read() -> None:
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise Refused(error(413, f"the body is over {cap} bytes"))
                chunks.append(chunk)

        try:
            await asyncio.wait_for(read(), BODY_TIMEOUT_S)
        except TimeoutError:
            raise Refused(error(408, f"the body did not arrive in {BODY_TIMEOUT_S:g} s")) from None
        except ClientDisconnect:  # a framing error or a cut upload: uvicorn has said so
            log.info("a body was cut short after %d bytes (the client went away)", size)
            raise Refused(error(400, "the body was cut short")) from None
        try:
            return read_flat_object(b"".join(chunks))
        except EnvelopeError as exc:
            raise Refused(error(400, f"the body is not a flat JSON object: {exc}")) from None

    # -- the jobs -------------------------------------------------------------------------

    def _submit(self, data: bytes, user: str) -> str:
        for _ in range(5):
            try:
                return submit_job(self.settings.folders, data, job_id=new_job_id(), user=user)
            except JobIdTaken:
                continue  # a clash of random ids: another one
        raise Refused(error(503, "could not find a free job id"))

    async def _admit(self, caller: User, data: bytes) -> str:
        """Submit *data* for *caller* within their quota: counted and submitted under the
        user's lock, so that concurrent posts cannot all see room for one more."""
        async with self._quota_locks.setdefault(caller.name, asyncio.Lock()):
            waiting = self._waiting(caller.name)
            if waiting >= caller.queued_jobs_max:
                raise Refused(
                    error(
                        429,
                        f"{caller.name} has {waiting} job(s) waiting, the most allowed is "
                        f"{caller.queued_jobs_max}",
                    )
                )
            return await asyncio.to_thread(self._submit, data, caller.name)

    def _pending_files(self, user: str, job_id: str = "*") -> set[str]:
        """Ids of *user*'s jobs posted and not yet in the store, in the folders in the order
        a job passes them (dump, then claimed), so that none is missed on its way."""
        folders = self.settings.folders
        found: set[str] = set()
        for folder in (folders.dump, folders.claimed):
            for path in folder.glob(f"file_{job_id}-{user}.json"):
                with contextlib.suppress(JobRejected):
                    name = parse_job_file_name(path.name)
                    if name.user == user or user == "*":
                        found.add(name.job_id)
        return found

    def _waiting(self, user: str) -> int:
        """The user's jobs not yet finished: in the dump and claimed folders, and in the store
        (looked at last: a job is recorded before its claimed file goes), each once."""
        pending = self._pending_files(user)
        return len(pending | self.store.read.waiting_job_ids(user, WAITING))

    def _record(self, caller: User, job_id: str, status: str) -> JobRecord | None:
        """The job's record as *caller* may see it; None for a job that is not in the store.
        Raises 404 (answered with *status*) for another user's job, and for a job neither
        in the store nor posted."""
        record = self.store.read.get(job_id)
        if record is None:
            user = "*" if caller.operator else caller.name
            if self._pending_files(user, job_id):
                return None  # posted: INITIALIZING
            record = self.store.read.get(job_id)  # taken in while the folders were looked at
        if record is None or not caller.sees(record.submitter):
            unknown = error(404, f"no job {job_id}", job_id=job_id, status=status)
            raise Refused(unknown)  # another user's job: answered the same
        return record

    def _status(self, caller: User, job_id: str, *, status: str = "ERROR") -> dict[str, Any]:
        """The job's status: its status file, unless that lags behind the store (a job just
        refused, before its file is written), then the store's record, reason included."""
        record = self._record(caller, job_id, status)
        if record is None:
            return job_answer(job_id, "INITIALIZING", "Got your json.")
        path = self.settings.folders.status / f"{job_id}.json"
        try:
            document = json.loads(read_regular_file(path, 4 << 20, what="the status file"))
        except (OSError, ValueError, LabspoolError):
            document = None
        if isinstance(document, dict) and document.get("status") == record.state.value:
            return document
        ended = record.state in (JobState.ERROR, JobState.CANCELLED)
        message = record.error_message or (record.detail if ended else None)
        return job_answer(job_id, record.state.value, record.detail, message or "None")


def _finished_result(path: Path) -> bytes:
    """The result document of *path* with ``"status": "finished"``, as the answer's body."""
    return json.dumps({**read_result(path), "status": "finished"}, ensure_ascii=False).encode()


def make_app(
    settings: Settings,
    users: UserDirectory | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The gateway of the tree *settings* describes (its users in its job store, unless
    *users* says otherwise)."""
    gateway = Gateway(settings, users, clock=clock)
    page = LivePage(settings, gateway.store, gateway.caller)
    v2 = "/api/v2/{backend}"
    routes = [
        *page.routes(),
        Route("/api/v2/backends", gateway.backends, methods=["GET"]),
        Route(f"{v2}/get_config", gateway.get_config, methods=["GET"]),
        Route(f"{v2}/get_backend_status", gateway.get_backend_status, methods=["GET"]),
        Route(f"{v2}/post_job", gateway.post_job, methods=["POST"]),
        Route(f"{v2}/get_job_status", gateway.get_job_status, methods=["GET"]),
        Route(f"{v2}/get_job_result", gateway.get_job_result, methods=["GET"]),
        Route("/metrics", gateway.metrics, methods=["GET"]),  # unauthenticated: Gateway.metrics
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "no such endpoint")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error(405, f"{request.method} is not allowed here")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        """systemd: ready once listening; watchdog pings from the event loop itself, so a
        loop that hangs stops them and systemd restarts the gateway."""
        notifier = Notifier.from_environment()
        notifier.ready(f"serving {gateway.backend.name} for the qiskit-cold-atom client")

        async def pings() -> None:
            interval = notifier.watchdog_interval_s
            while interval is not None:
                notifier.watchdog()
                await asyncio.sleep(interval)

        async def uses() -> None:
            while True:
                await asyncio.sleep(USES_FLUSH_S)
                await gateway.flush_uses()

        tasks = [asyncio.create_task(pings()), asyncio.create_task(uses())]
        try:
            yield
        finally:
            notifier.stopping()
            for task in tasks:
                task.cancel()
            await gateway.flush_uses()
            notifier.close()
            gateway.close()

    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_allowed},
        lifespan=lifespan,
    )
    # no redirects: Starlette would answer a path with a trailing slash 307 to a Location
    # built from the request's Host header, with the query (and its token) repeated
    app.router.redirect_slashes = False
    return app
