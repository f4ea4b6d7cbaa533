"""The lab's notifications: the outbox sent through apprise to a real local webhook."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from spooler.cli.main import main
from spooler.core.settings import Settings, load_settings
from spooler.core.states import JobState
from spooler.core.store import JobStore
from spooler.core.store.notifications import NotificationRows
from spooler.pipeline.notifications import Notifier, send_test
from tests.conftest import record_job, running_spooler
from tests.fakes import Clock

T0 = 1.7e9


class Receiver:
    """A webhook on 127.0.0.1: records each POST's JSON, answers *status*, or with
    ``hang`` set never answers (until released)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.answered: list[int] = []  # the status of each answer
        self.status = 200
        self.hang = False
        self.release = threading.Event()
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                post = json.loads(self.rfile.read(length))
                with receiver.arrived:
                    receiver.posts.append(post)
                    receiver.arrived.notify_all()
                if receiver.hang:
                    receiver.release.wait(30)
                    return
                status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.answered.append(status)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/"

    @property
    def delivered(self) -> int:
        return sum(1 for status in self.answered if status == 200)

    def wait_posts(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.posts) >= count, timeout)
            return list(self.posts)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.release.set()
        r.server.shutdown()
        r.server.server_close()
        r.thread.join(10)
        _join_sends()


def _join_sends() -> None:
    """The notifier's send threads given up on end once the receiver answers."""
    for thread in threading.enumerate():
        if thread.name.startswith("notify-"):
            thread.join(10)
            assert not thread.is_alive()


def with_notify(settings: Settings, **keys: object) -> Settings:
    """The tree's configuration with this ``notify`` section."""
    raw = yaml.safe_load(settings.path.read_text(encoding="utf-8"))
    raw["notify"] = keys
    settings.path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_settings(settings.path)


def add_rows(settings: Settings, count: int, *, at: float = T0) -> None:
    store = JobStore(settings.folders.database, clock=lambda: at)
    try:
        with store.transaction() as tx:
            for n in range(count):
                tx.notify(
                    "quarantine",
                    f"Item {n} quarantined",
                    f"Item {n} crashed the daemon twice.\nWhat to do: look at item {n}.",
                )
    finally:
        store.close()


def rows(notifier: Notifier) -> list[tuple[Any, ...]]:
    """(id, sent_at, tries, next_try_at, dropped_at, last_error) of every row."""
    return notifier.store.read.execute(
        "SELECT id, sent_at, tries, next_try_at, dropped_at, last_error FROM notifications "
        "ORDER BY id"
    ).fetchall()


@pytest.fixture
def closing() -> Iterator[list[Notifier]]:
    notifiers: list[Notifier] = []
    yield notifiers
    for notifier in notifiers:
        notifier.close()


def make(notifiers: list[Notifier], settings: Settings, **options: Any) -> Notifier:
    notifier = Notifier(settings, **options)
    notifiers.append(notifier)
    return notifier


def test_a_queued_job_ending_error_is_posted_with_what_to_do(
    tree: Settings, receiver: Receiver, closing: list[Notifier]
) -> None:
    settings = with_notify(tree, urls=[receiver.url])
    record_job(settings, "refused", "alice", JobState.ERROR)  # at admission: the user's
    notifier = make(closing, settings)
    notifier.start()
    try:
        record_job(settings, "lost1", "alice", JobState.QUEUED, JobState.ERROR)
        notifier.wake()
        (post,) = receiver.wait_posts(1)
        # delivered is marked once the answer is read (a stop before would leave it due)
        deadline = time.monotonic() + 10
        while (
            NotificationRows.due(notifier.store.read, time.time()) and time.monotonic() < deadline
        ):
            time.sleep(0.01)  # the store has no event to wait on
    finally:
        notifier.stop()
    assert notifier._thread is None, "stop() ends the thread"
    host = socket.gethostname()
    assert "lost1" in post["title"] and "singlequdit" in post["title"] and host in post["title"]
    assert "lost1" in post["message"] and "the atoms were lost" in post["message"]
    assert "What to do:" in post["message"]
    assert "labspool requeue lost1" in post["message"]
    assert post["message"].rstrip().splitlines()[-1].startswith("What to do:")
    assert "refused" not in json.dumps(receiver.posts)
    assert NotificationRows.due(notifier.store.read, time.time()) == []


def test_the_rate_limit_holds_back_the_surplus_and_sends_it_as_one_digest(
    tree: Settings, receiver: Receiver, closing: list[Notifier]
) -> None:
    settings = with_notify(tree, urls=[receiver.url], messages_per_hour_max=2)
    add_rows(settings, 5)
    clock = Clock()
    clock.now = T0
    notifier = make(closing, settings, clock=clock)
    assert notifier.step() == 2
    assert [p["title"].split("] ")[1] for p in receiver.posts] == [
        "Item 0 quarantined",
        "Item 1 quarantined",
    ]
    clock.now = T0 + 1800
    assert notifier.step() == 0
    assert len(receiver.posts) == 2, "the window is full: the other three wait"
    # a restart keeps the count: it is read from the store
    notifier.close()
    notifier = make(closing, settings, clock=clock)
    assert notifier.step() == 0 and len(receiver.posts) == 2
    clock.now = T0 + 3601
    assert notifier.step() == 3
    assert len(receiver.posts) == 3
    digest = receiver.posts[2]
    assert "3 messages held back by the rate limit" in digest["title"]
    assert "3 messages held back by the rate limit" in digest["message"]
    for n in (2, 3, 4):
        assert f"- Item {n} quarantined" in digest["message"]
        assert f"What to do: look at item {n}." in digest["message"]
    assert digest["message"].rstrip().endswith("What to do: look at item 4.")
    assert all(sent is not None for _, sent, *_ in rows(notifier))
    clock.now = T0 + 7200
    assert notifier.step() == 0 and len(receiver.posts) == 3


def test_a_failing_receiver_is_retried_with_back_off_and_delivered_once(
    tree: Settings, receiver: Receiver, closing: list[Notifier]
) -> None:
    settings = with_notify(tree, urls=[receiver.url], retry_interval_s=10, retry_interval_max_s=25)
    add_rows(settings, 1)
    clock = Clock()
    clock.now = T0
    notifier = make(closing, settings, clock=clock)
    receiver.status = 500
    next_tries = []
    for _ in range(3):
        assert notifier.step() == 0
        ((_, sent, tries, next_try, dropped, error),) = rows(notifier)
        assert sent is None and dropped is None and "URL 1 (json)" in error
        assert "127.0.0.1" not in error, "never the URL, its scheme only"
        next_tries.append(next_try - clock.now)
        clock.now += 1
        assert notifier.step() == 0, "not before its next try"
        clock.now = next_try
    assert next_tries == [10, 20, 25]
    assert len(receiver.posts) == 3
    receiver.status = 200
    assert notifier.step() == 1
    for _ in range(3):
        clock.now += 1000
        assert notifier.step() == 0
    assert receiver.answered == [500, 500, 500, 200]
    ((_, sent, tries, *_),) = rows(notifier)
    assert sent == clock.now - 3000 and tries == 4


def test_a_message_older_than_give_up_after_s_is_dropped(
    tree: Settings,
    receiver: Receiver,
    closing: list[Notifier],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = with_notify(tree, urls=[receiver.url], retry_interval_s=10, give_up_after_s=60)
    add_rows(settings, 1)
    clock = Clock()
    clock.now = T0
    notifier = make(closing, settings, clock=clock)
    receiver.status = 500
    assert notifier.step() == 0
    clock.now = T0 + 61
    with caplog.at_level(logging.ERROR, logger="spooler.pipeline.notifications"):
        assert notifier.step() == 0
    ((_, sent, tries, _, dropped, _),) = rows(notifier)
    assert sent is None and dropped == T0 + 61 and tries == 2
    assert any(r.levelno == logging.ERROR and "given up" in r.getMessage() for r in caplog.records)
    assert all(receiver.url not in r.getMessage() for r in caplog.records)
    receiver.status = 200
    clock.now += 10000
    assert notifier.step() == 0
    assert receiver.delivered == 0


def test_a_receiver_that_never_answers_holds_a_step_no_longer_than_the_timeout(
    tree: Settings, receiver: Receiver, closing: list[Notifier]
) -> None:
    timeout_s = 0.5
    settings = with_notify(tree, urls=[receiver.url], send_timeout_s=timeout_s, retry_interval_s=5)
    add_rows(settings, 3)
    clock = Clock()
    clock.now = T0
    notifier = make(closing, settings, clock=clock)
    receiver.hang = True
    started = time.perf_counter()
    assert notifier.step() == 0
    elapsed = time.perf_counter() - started
    assert elapsed < timeout_s + 0.5, f"step() took {elapsed:.2f} s"
    assert len(receiver.posts) == 1, "after a failure the rest waits for the retry"
    (first, *others) = rows(notifier)
    assert first[2] == 1 and first[3] == T0 + 5
    assert all(tries == 0 for _, _, tries, *_ in others)
    receiver.hang = False
    receiver.release.set()
    clock.now = T0 + 5
    assert notifier.step() == 3
    assert receiver.delivered >= 3


def test_a_hung_send_is_given_up_and_later_steps_go_on(
    tree: Settings, closing: list[Notifier]
) -> None:
    """Without apprise's own timeouts: a send that never returns is waited for no longer
    than send_timeout_s."""
    settings = with_notify(tree, urls=["json://example.invalid/"], send_timeout_s=0.2)
    add_rows(settings, 1)
    clock = Clock()
    clock.now = T0
    release = threading.Event()
    calls: list[str] = []

    def send(url: str, title: str, body: str) -> bool:
        calls.append(title)
        if len(calls) == 1:
            release.wait(30)
        return True

    notifier = make(closing, settings, clock=clock, send=send)
    try:
        started = time.perf_counter()
        assert notifier.step() == 0
        elapsed = time.perf_counter() - started
        assert elapsed < 0.2 + 0.3, f"step() took {elapsed:.2f} s"
        ((_, _, _, next_try, _, error),) = rows(notifier)
        assert "no answer within 0.2 s" in error
        clock.now = next_try
        assert notifier.step() == 1
        assert len(calls) == 2
    finally:
        release.set()
        _join_sends()


def test_without_urls_the_rows_are_marked_sent(tree: Settings, closing: list[Notifier]) -> None:
    add_rows(tree, 3)
    calls: list[str] = []

    def send(url: str, title: str, body: str) -> bool:
        calls.append(url)
        return True

    notifier = make(closing, tree, send=send)
    assert notifier.step() == 3
    assert calls == []
    assert all(sent is not None for _, sent, *_ in rows(notifier))
    assert notifier.step() == 0


def test_a_failing_step_is_logged_and_the_thread_goes_on(
    tree: Settings, closing: list[Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    notifier = make(closing, tree)
    failed, again = threading.Event(), threading.Event()
    calls = 0

    def step() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            failed.set()
            raise RuntimeError("the store went away")
        again.set()
        return 0

    notifier.step = step  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="spooler.pipeline.notifications"):
        notifier.start()
        try:
            assert failed.wait(10)
            notifier.wake()
            assert again.wait(10)
        finally:
            notifier.stop()
    assert any("a step failed" in r.getMessage() for r in caplog.records)


def test_the_spooler_daemon_sends_them_from_its_loop(tree: Settings, receiver: Receiver) -> None:
    settings = with_notify(tree, urls=[receiver.url])
    with running_spooler(settings):
        record_job(settings, "lost2", None, JobState.QUEUED, JobState.RUNNING, JobState.ERROR)
        (post,) = receiver.wait_posts(1)
        assert "lost2" in post["title"]
    assert not any(t.name == "notifications" for t in threading.enumerate())


def test_send_test_and_the_command(tree: Settings, receiver: Receiver) -> None:
    problems: list[str] = []
    assert not send_test(tree, problems=problems)
    assert "notify.urls is empty" in problems[0]

    settings = with_notify(tree, urls=[receiver.url])
    assert send_test(settings)
    assert "test message" in receiver.posts[0]["title"]
    assert "What to do:" in receiver.posts[0]["message"]

    def command() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--config", str(settings.path), "notify", "test"])
        return code, out.getvalue()

    assert command() == (0, "delivered\n")
    receiver.status = 500
    code, text = command()
    assert code == 1 and text.startswith("not delivered: URL 1 (json): ")
    assert str(receiver.server.server_address[1]) not in text


def test_an_unknown_url_says_so_by_its_scheme_only(tree: Settings, tmp_path: Path) -> None:
    settings = with_notify(tree, urls=["nosuchscheme://secret-token@host/"], send_timeout_s=5)
    problems: list[str] = []
    assert not send_test(settings, problems=problems)
    assert "nosuchscheme" in problems[0] and "secret-token" not in problems[0]
