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

The parts: :mod:`.params` (a request's parameters), :mod:`.callers` (who asks, at what rate;
their last uses), :mod:`.bodies` (``post_job``'s body), :mod:`.admission` (a job's size, byte
budget and quota; its submission), :mod:`.jobs` (a caller's jobs and their status) and
:mod:`.page` (the live page).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spooler.core.backends import get_backend
from spooler.core.errors import LabspoolError
from spooler.core.health import read_health
from spooler.core.notify import Notifier
from spooler.core.settings import Settings
from spooler.core.store import JobStore
from spooler.gateway.admission import Admission
from spooler.gateway.answers import Refused, backend_status, error, job_answer
from spooler.gateway.bodies import BodyReader
from spooler.gateway.callers import Callers, UserDirectory
from spooler.gateway.clientconfig import client_configuration
from spooler.gateway.jobs import JobLookup, finished_result
from spooler.gateway.page import LivePage
from spooler.gateway.params import check_backend, job_id_of

__all__ = ["UserDirectory", "make_app"]

USES_FLUSH_S = 5.0  # how often the users' last uses are written (user list shows them)


class Gateway:
    """The API's endpoints over the tree *settings* describes."""

    def __init__(
        self,
        settings: Settings,
        users: UserDirectory | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = JobStore(settings.folders.database)  # read; the users' last use written
        self.callers = Callers(settings, self.store, users, clock=clock)
        self.backend = get_backend(settings.backend)
        self.name = settings.gateway.backend_name
        self.config = client_configuration(
            self.backend,
            backend_name=self.name,
            max_instructions=settings.limits.instructions_per_experiment_max,
        )
        self.bodies = BodyReader(settings, clock=clock)
        self.admission = Admission(settings, self.store, clock=clock)
        self.jobs = JobLookup(settings, self.store)

    async def backends(self, request: Request) -> Response:
        """qlued's shape: a JSON list of the served backends' configurations (one here), each
        what ``get_config`` answers; the credentials of ``get_config``."""
        try:
            self.callers.caller(request.query_params)
        except Refused as refused:
            return refused.response
        return JSONResponse([self.config])

    async def get_config(self, request: Request) -> Response:
        try:
            check_backend(request, self.backend.name)
            self.callers.caller(request.query_params)
        except Refused as refused:
            return refused.response
        return JSONResponse({**self.config, "status": "OK"})

    async def get_backend_status(self, request: Request) -> Response:
        """The machine's health and the jobs waiting for it (:func:`.answers.backend_status`)."""
        try:
            check_backend(request, self.backend.name)
            self.callers.caller(request.query_params)
        except Refused as refused:
            return refused.response
        with self.store.snapshot() as reader:
            health = read_health(reader, time.time())
            pending = reader.pending_jobs(self.settings.backend)
        version = str(self.config.get("backend_version", ""))
        return JSONResponse(backend_status(self.name, version, health, pending))

    async def post_job(self, request: Request) -> Response:
        try:
            check_backend(request, self.backend.name)
            # credentials in the query are checked before the body is read; the released
            # client's are in the body, which is then read flat (:mod:`.envelope`)
            query = request.query_params
            early = self.callers.caller(query) if "token" in query else None
            body = await self.bodies.read(request)
            caller = early or self.callers.caller(body)
            job = body.get("job")
            if not isinstance(job, str):
                raise Refused(error(400, "the body's 'job' must be the job as a JSON string"))
            data = job.encode("utf-8", errors="surrogatepass")
            job_id = await self.admission.admit(caller, data)
        except Refused as refused:
            return refused.response
        return JSONResponse(job_answer(job_id, "INITIALIZING", "Got your json."))

    async def get_job_status(self, request: Request) -> Response:
        try:
            check_backend(request, self.backend.name)
            caller = self.callers.caller(request.query_params)
            job_id = job_id_of(request)
            answer = self.jobs.status(caller, job_id)
        except Refused as refused:
            return refused.response
        return JSONResponse(answer)

    async def get_job_result(self, request: Request) -> Response:
        try:
            check_backend(request, self.backend.name, status="error")
            caller = self.callers.caller(request.query_params, status="error")
            job_id = job_id_of(request, status="error")
            state = self.jobs.status(caller, job_id, status="error")
        except Refused as refused:
            return refused.response
        if state["status"] == "DONE":
            path = self.settings.folders.results / f"{job_id}.json"
            try:  # a result may be tens of MB: read and encoded beside the event loop
                body = await asyncio.to_thread(finished_result, path)
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

    def close(self) -> None:
        self.store.close()
        self.callers.close()
        if hasattr(self, "_metrics"):
            self._metrics.close()


def make_app(
    settings: Settings,
    users: UserDirectory | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The gateway of the tree *settings* describes (its users in its job store, unless
    *users* says otherwise)."""
    gateway = Gateway(settings, users, clock=clock)
    page = LivePage(settings, gateway.store, gateway.callers.caller)
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
                await gateway.callers.flush_uses()

        tasks = [asyncio.create_task(pings()), asyncio.create_task(uses())]
        try:
            yield
        finally:
            notifier.stopping()
            for task in tasks:
                task.cancel()
            await gateway.callers.flush_uses()
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
