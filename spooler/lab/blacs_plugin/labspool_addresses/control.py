"""Requests from labspool to BLACS, as files: the plugin's control channel.

BLACS's own server only takes new shots; it cannot be asked to drop queued shots or abort
the running one. The plugin can (it lives in BLACS and holds its queue manager), so the
spooler asks it through a folder:

    <control>/requests/<id>.json   {"action": "hello" | "withdraw" | "abort" | "recover",
                                    "folders": ["/…/shots/<job>/<experiment>", …],
                                    "timeout_s": 45}
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

``hello`` answers the plugin's report of BLACS (what :class:`spooler.core.health.BlacsReport`
parses): ``instance`` (changes whenever BLACS starts again), ``paused``, ``status`` (the queue's
status text), ``queued``, ``queued_folders``, ``head``, ``running``, ``running_since`` and
``devices_in_error`` (``[{"name", "message"}]``, the message as plain text).

``recover`` restarts every device tab in error, waits (``timeout_s`` of the request, default
:data:`RECOVER_WAIT_S`) until they are out of error, then lifts the queue's pause if no tab is
in error any more: ``{"restarted": [...], "still_in_error": [...], "unpaused": …,
"was_paused": …}``. It is answered from a thread of its own, so that ``hello`` and the
withdrawals are answered meanwhile; a second ``recover`` that comes while one is under way
gets that one's answer.

BLACS logs nothing when its queue manager pauses the queue: the control thread looks (at
most once a second) and logs a WARNING with the status text and the devices in error, and an
INFO line when the queue runs again.

It imports nothing from labspool and nothing from Qt: BLACS's side is handed in as
:class:`QueueOps`, so the logic runs in tests without BLACS. The parts, in this folder:
``state`` (BLACS's queue and tabs), ``messages`` (their error messages as plain text),
``withdrawals``, ``report`` (``hello`` and the pause's log lines), ``recovery``,
``documents`` (requests and replies written whole) and ``logs``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .documents import REQUEST_MAX_BYTES, publish
from .logs import log
from .messages import plain_message
from .recovery import RECOVER_WAIT_S, Recovery
from .report import PauseWatch, blacs_report
from .state import QueueOps, QueueSnapshot, TabState
from .withdrawals import Withdrawals, in_folders

__all__ = ["ControlServer", "QueueOps", "QueueSnapshot", "TabState", "plain_message"]


class ControlServer:
    """The control channel in *folder*: a thread that answers the requests through *ops*
    every *interval_s* and looks at the queue's pause every *watch_interval_s*."""

    def __init__(
        self,
        folder: str,
        ops: QueueOps,
        *,
        interval_s: float = 0.1,
        linger_s: float = 86400.0,
        sweep_s: float = 10.0,
        clock: Callable[[], float] = time.time,  # wall clock: the times outlive BLACS
        instance: str | None = None,
        watch_interval_s: float = 1.0,
        recover_poll_s: float = 0.2,
    ) -> None:
        self.folder = folder
        self.requests = os.path.join(folder, "requests")
        self.replies = os.path.join(folder, "replies")
        for path in (self.requests, self.replies):
            os.makedirs(path, exist_ok=True)
        self.ops = ops
        self.interval_s = interval_s
        self.withdrawals = Withdrawals(folder, ops, linger_s=linger_s, sweep_s=sweep_s, clock=clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # changes whenever BLACS starts again (the plugin starts with it)
        self.instance = instance or f"{os.getpid()}-{time.time():.6f}"
        self.watch_interval_s = watch_interval_s
        self._next_watch = float("-inf")
        self.pause_watch = PauseWatch(ops)
        self.recovery = Recovery(ops, self._stop, self._reply, poll_s=recover_poll_s)

    @property
    def lingering(self) -> dict[str, float]:
        """The withdrawn folders, each with the time until which it is refused."""
        return self.withdrawals.lingering

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
                log(logging.ERROR, "labspool control: a poll failed", exc_info=True)
            now = time.monotonic()
            if now >= self._next_watch:
                self._next_watch = now + self.watch_interval_s
                try:
                    self.watch_pause()
                except Exception:
                    log(logging.ERROR, "labspool control: watching the pause failed", exc_info=True)

    def poll(self) -> int:
        """Answer the waiting requests and sweep lingering folders; returns requests answered."""
        self.withdrawals.sweep()
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
                reply = self._answer(name, taken)
            except Exception as exc:
                log(logging.ERROR, "labspool control: request %s failed", name, exc_info=True)
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            if reply is not None:  # (None: answered later, by a thread of its own)
                self._reply(name, taken, reply)
            answered += 1
        return answered

    def _reply(self, name: str, taken: str, reply: dict[str, Any]) -> None:
        reply["id"] = name[: -len(".json")]
        publish(self.replies, name, reply)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(taken)

    def _answer(self, name: str, path: str) -> dict[str, Any] | None:
        with open(path, "rb") as handle:
            request = json.loads(handle.read(REQUEST_MAX_BYTES))
        action = request.get("action")
        folders = {os.path.abspath(str(f)) for f in request.get("folders", [])}
        if action == "hello":
            return self.report()
        if action == "recover":
            timeout_s = request.get("timeout_s", RECOVER_WAIT_S)
            if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
                return {"ok": False, "error": f"timeout_s: {timeout_s!r} is not a number"}
            self.recovery.recover_later(name, path, min(max(float(timeout_s), 0.0), 600.0))
            return None
        if action not in ("withdraw", "abort"):
            return {"ok": False, "error": f"unknown action {action!r}"}
        self.withdrawals.withdraw(folders)
        removed = self.ops.remove([p for p in self.ops.queued() if in_folders(p, folders)])
        aborted = None
        if action == "abort":
            running = self.ops.running()
            if running is not None and in_folders(running, folders) and self.ops.abort():
                aborted = running
        log(
            logging.INFO,
            "labspool control: %s removed %d shot(s), aborted %s",
            action,
            len(removed),
            aborted,
        )
        return {"ok": True, "removed": removed, "aborted": aborted}

    # -- the report, the pause, recovery, withdrawn folders ---------------------------------

    def report(self) -> dict[str, Any]:
        """BLACS as the plugin sees it (the answer to ``hello``)."""
        return blacs_report(self.ops, self.instance)

    def watch_pause(self) -> None:
        """Log BLACS's queue becoming paused and running again (:class:`.report.PauseWatch`)."""
        self.pause_watch.look()

    def recover(self, timeout_s: float = RECOVER_WAIT_S) -> dict[str, Any]:
        """Restart the device tabs in error, wait up to *timeout_s* for them to be idle and
        out of error, then unpause the queue if no tab is in error any more."""
        return self.recovery.recover(timeout_s)

    def refuses(self, path: str) -> bool:
        """Whether a shot arriving now belongs to a withdrawn job (BLACS must not queue it)."""
        return self.withdrawals.refuses(path)
