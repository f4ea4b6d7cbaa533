"""Delivering one message to the lab's channels: each apprise URL in a thread of its own,
all of them within one time bound.

A :data:`Send` delivers a title and a body to one URL (:func:`apprise_sender`, or a test's
own); :func:`send_bounded` sends to several URLs at once and says, per URL, whether it was
delivered or why not; :func:`describe_failures` turns that into one line. A URL holds
secrets: only its scheme (:func:`scheme`) is ever put in a message.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence

import apprise

__all__ = ["Send", "Stopped", "apprise_sender", "describe_failures", "scheme", "send_bounded"]

_WAIT_SLICE_S = 0.05  # a send is waited for in slices, so that stop() is heard

# (url, title, body) -> delivered; the notifier bounds its time (send_timeout_s)
Send = Callable[[str, str, str], bool]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}(?=://)")


class Stopped(Exception):
    """*stopping* was set (the notifier's stop()) while a send was awaited."""


class _UnknownURL(Exception):
    """A URL apprise does not take (its message names the scheme only)."""


def scheme(url: str) -> str:
    """The scheme of *url* (``json``, ``mailto``, ...): all of a URL that may be logged."""
    match = _SCHEME.match(url.strip())
    return match.group(0) if match else "(no scheme)"


def apprise_sender(timeout_s: float) -> Send:
    """A :data:`Send` through apprise, its connect and read timeouts set to *timeout_s*."""
    apprise_log = logging.getLogger("apprise")
    if apprise_log.level == logging.NOTSET:  # its debug lines show URLs, with their secrets
        apprise_log.setLevel(logging.WARNING)

    def send(url: str, title: str, body: str) -> bool:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            raise _UnknownURL(f"not a URL apprise takes ({scheme(url)}://...)")
        plugin.socket_connect_timeout = timeout_s
        plugin.socket_read_timeout = timeout_s
        channel = apprise.Apprise()
        channel.add(plugin)
        return bool(channel.notify(body=body, title=title))

    return send


def send_bounded(
    send: Send,
    targets: Sequence[tuple[int, str]],
    title: str,
    body: str,
    timeout_s: float,
    stopping: threading.Event | None = None,
) -> dict[int, str | None]:
    """Send to each (index, url) of *targets* at once, each in a thread of its own, and wait
    at most *timeout_s* for them all: index -> None (delivered) or why not. A send still
    running then is given up (its thread ends when apprise's own timeouts end it)."""
    results: dict[int, str | None] = {}
    lock = threading.Lock()
    finished = threading.Event()

    def work(index: int, url: str) -> None:
        error: str | None
        try:
            error = None if send(url, title, body) else "the service did not take it"
        except _UnknownURL as exc:
            error = str(exc)
        except Exception as exc:  # its message may hold the URL: the type only
            error = f"{type(exc).__name__} while sending"
        with lock:
            results[index] = error
            if len(results) == len(targets):
                finished.set()

    if not targets:
        return {}
    for index, url in targets:
        threading.Thread(
            target=work, args=(index, url), name=f"notify-{scheme(url)}", daemon=True
        ).start()
    deadline = time.monotonic() + timeout_s
    while not finished.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if stopping is not None and stopping.is_set():
            raise Stopped
        finished.wait(min(remaining, _WAIT_SLICE_S))
    with lock:
        outcome = dict(results)
    for index, _ in targets:
        outcome.setdefault(index, f"no answer within {timeout_s:g} s")
    return outcome


def describe_failures(urls: Sequence[str], results: dict[int, str | None]) -> str | None:
    """The failures of *results*, each with its URL's number and scheme; None: none."""
    errors = [
        f"URL {index + 1} ({scheme(urls[index])}): {error}"
        for index, error in sorted(results.items())
        if error is not None
    ]
    return "; ".join(errors) if errors else None
