"""Requests from labspool to BLACS, as files: the plugin's control channel.

BLACS's own server only takes new shots; it cannot be asked to drop queued shots or abort
the running one. The plugin can (it lives in BLACS and holds its queue manager), so the
spooler asks it through a folder:

    <control>/requests/<id>.json   {"action": "hello" | "withdraw" | "abort",
                                    "folders": ["/…/shots/<job>/<experiment>", …]}
    <control>/replies/<id>.json    {"id": …, "ok": true, "removed": [...], "aborted": …}

A request is written to a hidden temporary name and renamed into place, so the plugin
never reads half of one; the plugin takes it (renames it hidden), acts, publishes the
reply the same way and deletes the request. ``withdraw`` removes the queued shots that lie
in the folders and, for ``linger_s`` afterwards, refuses every shot that arrives there
later (runmanager may still be compiling the experiment; it stops at the first refusal).
Shot folders are per job, experiment and attempt, so a refused folder is never reused.
For ``sweep_s`` after a withdrawal the plugin also looks through the queue itself, for a
shot whose ``process_request`` was already under way when the withdrawal came.
``abort`` also aborts the shot BLACS is running if it lies in one of the folders: BLACS's
abort button, which stops the devices and drops that shot (not run again, no data).

The withdrawn folders are kept in ``<control>/withdrawn.json`` (written whole and flushed
before the queue is touched): BLACS saves its queue when it closes and restores it when it
starts, before the plugins, so a plugin started again sweeps the restored queue of the
withdrawn shots and goes on refusing them.

It imports nothing from labspool and nothing from Qt: BLACS's side is handed in as
:class:`QueueOps`, so the logic runs in tests without BLACS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .files import fsync_folder, write_hidden

__all__ = ["ControlServer", "QueueOps"]

logger = logging.getLogger("BLACS.plugin.labspool_addresses.control")

REQUEST_MAX_BYTES = 1 << 20


class QueueOps(Protocol):
    def queued(self) -> list[str]:
        """The paths of the shots in BLACS's queue, in order."""

    def remove(self, paths: Iterable[str]) -> list[str]:
        """Take these shots out of the queue; returns those that were there."""

    def running(self) -> str | None:
        """The shot BLACS is running now (None when idle)."""

    def abort(self) -> bool:
        """Abort the running shot; False when there is nothing to abort."""


def _log(level: int, message: str, *args: object, exc_info: bool = False) -> None:
    """Log, and never raise: BLACS's log handler (zlog) can time out, and a logging call that
    raised ended the control thread for good (no withdrawal answered until BLACS restarted)."""
    with contextlib.suppress(Exception):
        logger.log(level, message, *args, exc_info=exc_info)


def _in(path: str, folders: Iterable[str]) -> bool:
    return os.path.dirname(os.path.abspath(path)) in folders


def _publish(folder: str, name: str, document: dict[str, Any]) -> None:
    tmp = write_hidden(folder, name, (json.dumps(document, sort_keys=True) + "\n").encode())
    os.rename(tmp, os.path.join(folder, name))


class ControlServer:
    def __init__(
        self,
        folder: str,
        ops: QueueOps,
        *,
        interval_s: float = 0.1,
        linger_s: float = 86400.0,
        sweep_s: float = 10.0,
        clock: Callable[[], float] = time.time,  # wall clock: the times outlive BLACS
    ) -> None:
        self.folder = folder
        self.requests = os.path.join(folder, "requests")
        self.replies = os.path.join(folder, "replies")
        for path in (self.requests, self.replies):
            os.makedirs(path, exist_ok=True)
        self.memory = os.path.join(folder, "withdrawn.json")
        self.ops = ops
        self.interval_s = interval_s
        self.linger_s = linger_s
        self.sweep_s = sweep_s
        self.clock = clock
        self.lingering: dict[str, float] = self._recall()  # withdrawn folder -> until when
        # BLACS restored its saved queue before the plugin started: sweep it for a while
        self._sweep_until = self.clock() + sweep_s if self.lingering else float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="labspool-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # the thread must outlive any one bad request
                _log(logging.ERROR, "labspool control: a poll failed", exc_info=True)

    def poll(self) -> int:
        """Answer the waiting requests and sweep lingering folders; returns requests answered."""
        self._sweep()
        answered = 0
        for name in sorted(os.listdir(self.requests)):
            if name.startswith(".") or not name.endswith(".json"):
                continue
            taken = os.path.join(self.requests, f".{name}.taken")
            try:
                os.rename(os.path.join(self.requests, name), taken)
            except FileNotFoundError:
                continue  # withdrawn by the client that gave up waiting
            try:
                reply = self._answer(taken)
            except Exception as exc:
                _log(logging.ERROR, "labspool control: request %s failed", name, exc_info=True)
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            reply["id"] = name[: -len(".json")]
            _publish(self.replies, name, reply)
            os.unlink(taken)
            answered += 1
        return answered

    def _answer(self, path: str) -> dict[str, Any]:
        with open(path, "rb") as handle:
            request = json.loads(handle.read(REQUEST_MAX_BYTES))
        action = request.get("action")
        folders = {os.path.abspath(str(f)) for f in request.get("folders", [])}
        if action == "hello":
            return {"ok": True, "queued": len(self.ops.queued()), "running": self.ops.running()}
        if action not in ("withdraw", "abort"):
            return {"ok": False, "error": f"unknown action {action!r}"}
        until = self.clock() + self.linger_s
        self._sweep_until = self.clock() + self.sweep_s
        for folder in folders:
            self.lingering[folder] = until
        self._remember()
        removed = self.ops.remove([p for p in self.ops.queued() if _in(p, folders)])
        aborted = None
        if action == "abort":
            running = self.ops.running()
            if running is not None and _in(running, folders) and self.ops.abort():
                aborted = running
        _log(
            logging.INFO,
            "labspool control: %s removed %d shot(s), aborted %s",
            action,
            len(removed),
            aborted,
        )
        return {"ok": True, "removed": removed, "aborted": aborted}

    def refuses(self, path: str) -> bool:
        """Whether a shot arriving now belongs to a withdrawn job (BLACS must not queue it)."""
        until = self.lingering.get(os.path.dirname(os.path.abspath(path)))
        return until is not None and until > self.clock()

    def _recall(self) -> dict[str, float]:
        try:
            with open(self.memory, "rb") as handle:
                saved = json.loads(handle.read(REQUEST_MAX_BYTES))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            _log(
                logging.ERROR,
                "labspool control: %s unreadable (%s); refusing nothing",
                self.memory,
                exc,
            )
            return {}
        now = self.clock()
        if not isinstance(saved, dict):
            return {}
        return {
            str(f): float(t)
            for f, t in saved.items()
            if isinstance(t, (int, float)) and not isinstance(t, bool) and t > now
        }

    def _remember(self) -> None:
        _publish(self.folder, "withdrawn.json", self.lingering)
        fsync_folder(self.folder)

    def _sweep(self) -> None:
        now = self.clock()
        current = {f: t for f, t in self.lingering.items() if t > now}
        if len(current) != len(self.lingering):
            self.lingering = current
            self._remember()
        # (asking BLACS's main thread for the queue ten times a second, only while it matters)
        if self.lingering and now < self._sweep_until:
            late = [p for p in self.ops.queued() if _in(p, self.lingering)]
            if late:
                removed = self.ops.remove(late)
                _log(
                    logging.INFO,
                    "labspool control: removed %d late shot(s) of withdrawn jobs",
                    len(removed),
                )
