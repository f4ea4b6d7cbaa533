"""The gateway's HTTP server: uvicorn, with the guards on connections that it lacks.

uvicorn (0.55) starts its keep-alive timer only after an answer, and any byte received stops
it: a connection that never completes a request (one that sends nothing, or slowloris' headers
a byte at a time) stays open for ever. Its ``limit_concurrency`` counts such connections and
answers every request beyond it with a ``503 text/plain`` the client cannot read: 1,000 idle
connections were enough to refuse every legitimate poll. So the gateway serves with
:class:`GuardedH11Protocol` (uvicorn's h11 protocol, passed as its ``http`` class) instead:

- a connection that sends nothing is not even handed to uvicorn until its first bytes arrive,
  or about ``idle_timeout_s`` passed (``TCP_DEFER_ACCEPT``, :func:`defer_accept`);
- then it has ``idle_timeout_s`` (between half and all of it, at random, so that
  connections opened together are not closed together) to send the headers of its next
  request, from when it opens and after each answer, however it trickles bytes; then it is
  closed. A request's body has its own deadline (:data:`spooler.gateway.bodies.BODY_TIMEOUT_S`);
- at most ``connections_per_client_max`` connections are open from one client address (a
  reverse proxy's addresses, ``proxy_addresses``, are not capped: the proxy caps its clients),
  and ``connections_max`` in all; a connection over a cap is answered a JSON 503 and closed;
- a request h11 cannot read (framing, a cut upload) is answered 400 in JSON, logged in one
  line (the app logs a body cut short in one line too, not a traceback);
- at most ``requests_in_flight_max`` requests are answered at the same time
  (:class:`InFlightLimit`); one more is answered at once: 503 with a JSON ``status``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from spooler.core.settings import GatewaySettings, Settings
from spooler.gateway.answers import job_answer

__all__ = [
    "ConnectionLimits",
    "GuardedH11Protocol",
    "InFlightLimit",
    "defer_accept",
    "guarded_protocol",
    "serve",
]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def refusal_body(message: str) -> bytes:
    """The JSON of a refusal (400, 503): the client's protocol (spooler.gateway.answers)."""
    return json.dumps(job_answer(None, "ERROR", f"Refused: {message}", message)).encode()


@dataclass(frozen=True)
class ConnectionLimits:
    idle_timeout_s: float
    per_client_max: int
    total_max: int
    proxy_addresses: frozenset[str]

    @classmethod
    def from_settings(cls, gateway: GatewaySettings) -> ConnectionLimits:
        return cls(
            idle_timeout_s=gateway.idle_timeout_s,
            per_client_max=gateway.connections_per_client_max,
            total_max=gateway.connections_max,
            proxy_addresses=frozenset(gateway.proxy_addresses),
        )

    def refusal(self, host: str | None, from_host: int, in_all: int) -> str | None:
        """Why a new connection from *host* is refused, with *from_host* connections open from
        it and *in_all* open in all (itself counted in both)."""
        if in_all > self.total_max:
            return f"more than {self.total_max} connections are open"
        if host is None or host in self.proxy_addresses:
            return None
        if from_host > self.per_client_max:
            return f"more than {self.per_client_max} connections are open from {host}"
        return None


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers and connection caps."""

    limits: ClassVar[ConnectionLimits]
    open_per_host: ClassVar[Counter[str | None]]  # this server's connections, per address
    _deadline: asyncio.TimerHandle | None = None
    _host: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._host = self.client[0] if self.client else None
        self.open_per_host[self._host] += 1
        refusal = self.limits.refusal(
            self._host, self.open_per_host[self._host], len(self.connections)
        )
        if refusal is not None:
            self._refuse(refusal)
        else:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        left = self.open_per_host[self._host] - 1
        if left > 0:
            self.open_per_host[self._host] = left
        else:
            del self.open_per_host[self._host]
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are complete: the app answers it
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # first: a pipelined request taken up below disarms it
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot read (uvicorn has logged one line): answered in JSON, not in
        uvicorn's text/plain, and closed."""
        body = refusal_body(msg)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            output = self.conn.send(h11.Response(status_code=400, headers=headers))
            output = (output or b"") + (self.conn.send(h11.Data(data=body)) or b"")
            output += self.conn.send(h11.EndOfMessage()) or b""
            self.transport.write(output)
        except h11.LocalProtocolError:  # an answer had begun: nothing more can be said
            pass
        self.transport.close()

    def _arm(self) -> None:
        if self._deadline is None and not self.transport.is_closing():
            # between half and all of the timeout, at random: connections opened together
            # (an attacker's) are not all closed, and opened again, in one burst
            wait_s = self.limits.idle_timeout_s * (0.5 + 0.5 * random.random())
            self._deadline = self.loop.call_later(wait_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, reason: str) -> None:
        """A JSON 503 before any request (h11 cannot answer before one), then closed."""
        log.warning("a connection refused: %s", reason)
        body = refusal_body(reason)
        head = (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class uvicorn is given (its ``http``), with *limits*."""
    attributes = {"limits": limits, "open_per_host": Counter()}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attributes)


class InFlightLimit:
    """ASGI middleware: at most *limit* HTTP requests answered at once; one more is answered
    503 with a JSON ``status`` at once (the client reads ``status`` before the code)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            body = refusal_body(f"more than {self.limit} requests at once; try again")
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _allow_open_files(wanted: int) -> None:
    """Raise this process's soft limit of open files towards *wanted* (systemd's default soft
    limit is 1,024: the caps above would never be reached, accept() would fail first)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    if ceiling < wanted:
        log.warning(
            "at most %d files may be open (the hard limit): fewer than gateway.connections_max "
            "allows; raise LimitNOFILE in the service or lower connections_max",
            hard,
        )


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> None:
    """Serve the gateway of *settings* on *host*:*port* until SIGTERM or SIGINT."""
    import uvicorn

    from spooler.gateway.app import make_app

    gateway = settings.gateway
    _allow_open_files(gateway.connections_max + 256)  # and the store, the logs, the folders
    config = uvicorn.Config(
        InFlightLimit(make_app(settings), gateway.requests_in_flight_max),
        host=host,
        port=port,
        http=guarded_protocol(ConnectionLimits.from_settings(gateway)),
        log_level="info",
        access_log=False,  # its lines carry the query string, and so the users' tokens
        timeout_keep_alive=max(1, min(5, int(gateway.idle_timeout_s))),
        limit_concurrency=None,  # the guards above answer overload, in JSON
        server_header=False,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    listening = config.bind_socket()  # uvicorn's own, which says where it listens
    defer_accept(listening, gateway.idle_timeout_s)
    listening.listen(config.backlog)  # now, as it said so: connections wait for the loop
    uvicorn.Server(config).run(sockets=[listening])


def defer_accept(sock: socket.socket, defer_s: float) -> None:
    """On Linux, ``TCP_DEFER_ACCEPT`` on the listening *sock* (nginx's ``deferred``): the
    kernel hands a connection over only once its first bytes arrive, or after about
    *defer_s*; a connection that sends nothing costs the gateway no work meanwhile."""
    if hasattr(socket, "TCP_DEFER_ACCEPT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, max(1, round(defer_s)))
