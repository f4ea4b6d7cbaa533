"""``post_job``'s body: within its size, its deadline and its client address's byte budget.

The body is at most ``body_max_bytes`` (a larger ``Content-Length`` is refused before a
byte is read), arrives within :data:`BODY_TIMEOUT_S`, and is read as a flat JSON object
(:mod:`.envelope`). Bodies from one client address may bring at most :data:`ADDRESS_USERS`
users' worth of ``post_bytes_per_s``: they are counted before they are read, as the user is
known only after (the client's token is inside the body).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request

from spooler.core.settings import Settings
from spooler.gateway.answers import Refused, error
from spooler.gateway.envelope import EnvelopeError, read_flat_object
from spooler.gateway.ratelimit import RateLimiter

__all__ = ["ADDRESS_USERS", "BODY_TIMEOUT_S", "BodyReader"]

BODY_TIMEOUT_S = 10.0
ADDRESS_USERS = 4  # bodies from one address: as many bytes a second as this many users post
log = logging.getLogger("spooler.gateway.app")  # the gateway's log lines keep their name


class BodyReader:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.address_limiter = RateLimiter(clock=clock)  # post_job's bodies, per address

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

    async def read(self, request: Request) -> dict[str, Any]:
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
