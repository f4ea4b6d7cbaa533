"""The gateway's server guards (spooler/gateway/server.py): ``labspool web`` itself, a real
uvicorn, met with raw sockets from other loopback addresses than the legitimate client's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from spooler.core.settings import Settings, load_settings
from spooler.core.states import JobState
from spooler.gateway.server import ConnectionLimits, InFlightLimit
from tests.conftest import add_users, good_job, record_job
from tests.webtools import gateway

URL = "/api/v2/singlequdit"
IDLE_TIMEOUT_S = 1.0
PER_CLIENT = 8


def with_gateway(settings: Settings, **keys: Any) -> Settings:
    raw = yaml.safe_load(settings.path.read_text(encoding="utf-8"))
    raw.setdefault("gateway", {}).update(keys)
    settings.path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_settings(settings.path)


@pytest.fixture
def served(tree: Settings, tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    settings = with_gateway(
        tree, idle_timeout_s=IDLE_TIMEOUT_S, connections_per_client_max=PER_CLIENT
    )
    tokens = add_users(
        settings,
        {"alice": {"requests_per_s": 1000.0}, "three": {"queued_jobs_max": 3}},
    )
    with gateway(settings.path, log=tmp_path / "web.log") as url:
        yield int(url.rsplit(":", 1)[1]), tokens


def connect(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_within(sock: socket.socket, timeout_s: float) -> bytes | None:
    """What the server sent before it closed *sock* within *timeout_s*; None if it did not."""
    sock.settimeout(timeout_s)
    received = b""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        return received
    return None


def get(port: int, path: str, source: str = "127.0.0.1") -> tuple[int, dict[str, Any]]:
    with contextlib.closing(connect(port, source)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = closed_within(sock, 10.0)
    assert answer, "no answer"
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def config_path(tokens: dict[str, str]) -> str:
    return f"{URL}/get_config?username=alice&token={tokens['alice']}"


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    served: tuple[int, dict[str, str]],
) -> None:
    port, _ = served
    with contextlib.closing(connect(port, "127.0.0.2")) as idle:
        started = time.monotonic()
        assert closed_within(idle, 10 * IDLE_TIMEOUT_S) == b"", "closed, with nothing said"
        assert time.monotonic() - started < 5 * IDLE_TIMEOUT_S


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_idle_timeout(
    served: tuple[int, dict[str, str]],
) -> None:
    port, tokens = served
    request = f"GET {config_path(tokens)} HTTP/1.1\r\nHost: x\r\nX-Slow: {'a' * 200}\r\n\r\n"
    slow = connect(port, "127.0.0.2")
    started = time.monotonic()
    cut = False
    for byte in request.encode():  # slowloris: a byte every 50 ms, never a whole head in time
        try:
            slow.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            cut = True
            break
        slow.settimeout(0.05)
        try:
            if slow.recv(1) == b"":
                cut = True
                break
        except TimeoutError:
            continue
    slow.close()
    assert cut, "the trickled request was never cut off"
    assert time.monotonic() - started < 5 * IDLE_TIMEOUT_S


def test_a_kept_alive_connection_has_the_idle_timeout_again_after_each_answer(
    served: tuple[int, dict[str, str]],
) -> None:
    port, tokens = served
    with contextlib.closing(connect(port, "127.0.0.2")) as sock:
        sock.sendall(f"GET {config_path(tokens)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.settimeout(10)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET / HT")  # the next request's head, begun and never finished
        rest = closed_within(sock, 10 * IDLE_TIMEOUT_S)
        assert rest is not None, "a connection stalled in its second request stayed open"


def test_connections_over_the_cap_of_one_address_get_a_json_503_others_are_served(
    served: tuple[int, dict[str, str]],
) -> None:
    port, tokens = served
    held = [connect(port, "127.0.0.3") for _ in range(PER_CLIENT)]
    try:
        for sock in held:  # a request begun: handed over at once (no deferred accept)
            sock.sendall(b"GET / HT")
        # the server sees them before the next one: one answered request proves it
        assert get(port, config_path(tokens), source="127.0.0.4")[0] == 200
        over = connect(port, "127.0.0.3")
        over.sendall(b"G")
        answer = closed_within(over, 10.0)
        over.close()
        assert answer is not None and answer.startswith(b"HTTP/1.1 503")
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert body["status"] == "ERROR" and "connections are open from" in body["error_message"]
        code, config = get(port, config_path(tokens))  # another address: served
        assert code == 200 and config["backend_name"] == "singlequdit"
    finally:
        for sock in held:
            sock.close()


def test_a_thousand_idle_connections_leave_the_legitimate_client_served(
    served: tuple[int, dict[str, str]],
) -> None:
    port, tokens = served
    idle = [connect(port, f"127.0.1.{1 + i % 200}") for i in range(1000)]  # 5 per address
    try:
        for _ in range(5):
            code, answer = get(port, config_path(tokens))
            assert code == 200 and answer["status"] == "OK"
    finally:
        for sock in idle:
            sock.close()


def test_the_caps_count_per_address_and_in_all_and_spare_the_proxy() -> None:
    limits = ConnectionLimits(
        idle_timeout_s=1.0, per_client_max=2, total_max=5, proxy_addresses=frozenset({"p"})
    )
    assert limits.refusal("a", 2, 2) is None
    assert "from a" in (limits.refusal("a", 3, 3) or "")
    assert limits.refusal("p", 5, 5) is None, "the proxy carries every client"
    assert limits.refusal("b", 1, 6) == "more than 5 connections are open"


def test_requests_beyond_the_in_flight_limit_are_answered_503_in_json() -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        release = asyncio.Event()
        entered = asyncio.Event()
        inside = 0

        async def app(scope: Any, receive: Any, send: Any) -> None:
            nonlocal inside
            inside += 1
            if inside == 2:
                entered.set()
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        limited = InFlightLimit(app, 2)

        async def call() -> tuple[int, bytes]:
            sent: list[Any] = []

            async def send(message: Any) -> None:
                sent.append(message)

            async def receive() -> Any:
                return {"type": "http.request", "body": b"", "more_body": False}

            await limited({"type": "http"}, receive, send)
            return sent[0]["status"], sent[1]["body"]

        first = [asyncio.create_task(call()) for _ in range(2)]
        await entered.wait()
        third = await call()
        release.set()
        return [*(await asyncio.gather(*first)), third]

    *served_ones, refused = asyncio.run(scenario())
    assert [code for code, _ in served_ones] == [200, 200]
    assert refused[0] == 503 and json.loads(refused[1])["status"] == "ERROR"


def post_raw(port: int, body: bytes) -> tuple[int, dict[str, Any]]:
    with contextlib.closing(connect(port, "127.0.0.1")) as sock:
        head = (
            f"POST {URL}/post_job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        answer = closed_within(sock, 30.0)
    assert answer, "no answer"
    head_bytes, _, rest = answer.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), json.loads(rest)


def test_the_queue_quota_holds_for_thirty_posts_at_once(
    served: tuple[int, dict[str, str]], tree: Settings
) -> None:
    port, tokens = served
    record_job(tree, "earlier", "three", JobState.QUEUED)  # one waiting in the store
    claimed = tree.folders.claimed / "file_onitsway-three.json"  # one between dump and store
    claimed.write_text(json.dumps(good_job()))
    body = json.dumps(
        {"job": json.dumps(good_job()), "username": "three", "token": tokens["three"]}
    ).encode()
    with ThreadPoolExecutor(30) as pool:
        codes = [code for code, _ in pool.map(lambda _: post_raw(port, body), range(30))]
    assert sorted(codes) == [200] + [429] * 29, "3 allowed: 2 were waiting already"
    assert len(list(tree.folders.dump.iterdir())) == 1


def test_protocol_errors_are_answered_in_json_and_logged_in_one_line(
    served: tuple[int, dict[str, str]], tmp_path: Path
) -> None:
    port, tokens = served
    cases = [
        # chunked framing that is not hex
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        # an upload cut short: 1,000 bytes announced, 9 sent, then the client is gone
        b"Content-Length: 1000\r\n\r\n" + b'{"job": "',
        # a chunk begun and never finished
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"jo\r\n',
    ]
    for tail in cases:
        with contextlib.closing(connect(port, "127.0.0.5")) as sock:
            sock.sendall(f"POST {URL}/post_job HTTP/1.1\r\nHost: x\r\n".encode() + tail)
            sock.shutdown(socket.SHUT_WR)
            answer = closed_within(sock, 10.0)
        assert answer is not None
        if answer:  # an answer, when the server had one to give, is JSON
            head, _, body = answer.partition(b"\r\n\r\n")
            assert b"application/json" in head.lower(), head
            assert (
                json.loads(body.split(b"\r\n")[1] if b"chunked" in head else body)["status"]
                == "ERROR"
            )
    assert get(port, config_path(tokens))[0] == 200  # the last request: the log is written
    log = (tmp_path / "web.log").read_text()
    assert "Traceback" not in log, log
    problems = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert 1 <= len(problems) <= len(cases), log
