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
:class:`QueueOps`, so the logic runs in tests without BLACS.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .files import fsync_folder, write_hidden

__all__ = ["ControlServer", "QueueOps", "QueueSnapshot", "TabState", "plain_message"]

logger = logging.getLogger("BLACS.plugin.labspool_addresses.control")

REQUEST_MAX_BYTES = 1 << 20
RECOVER_WAIT_S = 45.0  # how long recover waits for the restarted tabs (the request may say)
MESSAGE_MAX_CHARS = 500
FATAL = "fatal error"  # a device tab's state after an exception it cannot handle


@dataclass(frozen=True, slots=True)
class TabState:
    """A BLACS device tab as the plugin sees it."""

    name: str
    state: str  # the tab's state machine: 'idle', 'fatal error', ...
    error: str  # its ``error_message`` as BLACS keeps it (HTML; empty when none)

    @property
    def in_error(self) -> bool:
        return self.state == FATAL or bool(self.error.strip())

    @property
    def ready(self) -> bool:
        """Out of error and idle (a restarted tab is so once its worker is up again)."""
        return not self.in_error and self.state == "idle"


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """BLACS's queue manager at one moment (read in one go in its main thread)."""

    paused: bool
    status: str
    queued: list[str] = field(default_factory=list)
    tabs: list[TabState] = field(default_factory=list)
    # BLACS's queue manager thread runs (it dies on an error in its own error handling,
    # e.g. a read-only shot folder on another file system than /tmp; BLACS then holds its
    # queue but never runs it again)
    manager_alive: bool = True


class QueueOps(Protocol):
    def queued(self) -> list[str]:
        """The paths of the shots in BLACS's queue, in order."""

    def remove(self, paths: Iterable[str]) -> list[str]:
        """Take these shots out of the queue; returns those that were there."""

    def running(self) -> str | None:
        """The shot BLACS is running now (None when idle)."""

    def abort(self) -> bool:
        """Abort the running shot; False when there is nothing to abort."""

    def running_since(self) -> float | None:
        """When the running shot started (wall clock; None when idle)."""

    def snapshot(self) -> QueueSnapshot:
        """The queue, its pause and status text, and the device tabs, at one moment."""

    def paused(self) -> bool:
        """Whether the queue is paused (``manager_paused``; asked once a second)."""

    def set_paused(self, paused: bool) -> None:
        """Pause or unpause the queue (the pause button)."""

    def tabs(self) -> list[TabState]:
        """The device tabs."""

    def restart(self, name: str) -> None:
        """Restart a device tab (its restart button: its worker processes start again)."""


def plain_message(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """A tab's error message (HTML) as plain text of at most about *limit* characters.

    BLACS's message is a header per failure ("Exception in worker - <time>:", "Fatal
    exception in main process - <time>:") and its traceback: of a traceback only the
    exception line is kept (the frames are in BLACS's log). A text still too long keeps its
    beginning and its last line."""
    text = re.sub(r"(?i)<br\s*/?>", "\n", text)
    text = re.sub(r"<[^>]*>", "", text)
    text = html.unescape(text).replace("\xa0", " ")
    lines, in_traceback = [], False
    for line in text.splitlines():
        if line.strip() == "Traceback (most recent call last):":
            in_traceback = True
        elif in_traceback and (not line.strip() or line[:1].isspace()):
            pass  # a frame, or its line of code
        elif line.strip():
            in_traceback = False
            lines.append(line.strip())
    whole = "\n".join(lines)
    if len(whole) <= limit:
        return whole
    last = lines[-1][-limit:]
    room = limit - len(last) - 3
    if room <= 0:
        return last
    return f"{whole[:room].rstrip()}\n…\n{last}"


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
        instance: str | None = None,
        watch_interval_s: float = 1.0,
        recover_poll_s: float = 0.2,
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
        # changes whenever BLACS starts again (the plugin starts with it)
        self.instance = instance or f"{os.getpid()}-{time.time():.6f}"
        self.watch_interval_s = watch_interval_s
        self.recover_poll_s = recover_poll_s
        self._next_watch = float("-inf")
        self._pause_pending = False  # seen paused once; logged at the next look
        self._pause_logged = False
        self._recovering = threading.Lock()
        self._recover_waiting: list[tuple[str, str]] = []  # requests the recover answers
        self._recover_thread: threading.Thread | None = None

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
            now = time.monotonic()
            if now >= self._next_watch:
                self._next_watch = now + self.watch_interval_s
                try:
                    self.watch_pause()
                except Exception:
                    _log(
                        logging.ERROR, "labspool control: watching the pause failed", exc_info=True
                    )

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
                reply = self._answer(name, taken)
            except Exception as exc:
                _log(logging.ERROR, "labspool control: request %s failed", name, exc_info=True)
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            if reply is not None:  # (None: answered later, by a thread of its own)
                self._reply(name, taken, reply)
            answered += 1
        return answered

    def _reply(self, name: str, taken: str, reply: dict[str, Any]) -> None:
        reply["id"] = name[: -len(".json")]
        _publish(self.replies, name, reply)
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
            self._recover_later(name, path, min(max(float(timeout_s), 0.0), 600.0))
            return None
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

    # -- the report, the pause, recovery -------------------------------------------------

    def report(self) -> dict[str, Any]:
        """BLACS as the plugin sees it (the answer to ``hello``)."""
        snap = self.ops.snapshot()
        folders: dict[str, int] = {}
        for path in snap.queued:
            folder = os.path.dirname(os.path.abspath(path))
            folders[folder] = folders.get(folder, 0) + 1
        running = self.ops.running()
        return {
            "ok": True,
            "instance": self.instance,
            "paused": snap.paused,
            "status": snap.status,
            "queued": len(snap.queued),
            "queued_folders": folders,
            "head": snap.queued[0] if snap.queued else None,
            "running": running,
            "running_since": None if running is None else self.ops.running_since(),
            "devices_in_error": _errors(snap.tabs),
            "manager_alive": snap.manager_alive,
        }

    def watch_pause(self) -> None:
        """Log BLACS's queue becoming paused (a WARNING, with its status text and the devices
        in error) and running again (INFO). The WARNING waits for the next look: BLACS sets
        its status text just after the pause."""
        paused = self.ops.paused()
        if not paused:
            self._pause_pending = False
            if self._pause_logged:
                self._pause_logged = False
                _log(logging.INFO, "labspool control: BLACS's queue runs again")
            return
        if self._pause_logged:
            return
        if not self._pause_pending:
            self._pause_pending = True
            return
        self._pause_pending = False
        self._pause_logged = True
        snap = self.ops.snapshot()
        errors = _errors(snap.tabs)
        _log(
            logging.WARNING,
            "labspool control: BLACS's queue is paused (status: %s); devices in error: %s",
            " / ".join(line.strip() for line in snap.status.splitlines() if line.strip()),
            "; ".join(f"{e['name']}: {_exceptions(e['message'])}" for e in errors)
            if errors
            else "none",
        )

    def recover(self, timeout_s: float = RECOVER_WAIT_S) -> dict[str, Any]:
        """Restart the device tabs in error, wait up to *timeout_s* for them to be idle and
        out of error, then unpause the queue if no tab is in error any more."""
        before = self.ops.snapshot()
        if not before.manager_alive:
            # Its thread died in the middle of its own error handling, perhaps holding a lock
            # or a device half-way: a new thread took the next shot and hung (tried). Only
            # a new BLACS is safe; the shots it held are made again by labspool.
            _log(logging.ERROR, "labspool control: BLACS's queue manager has stopped")
        broken = [t.name for t in before.tabs if t.in_error]
        restarted = []
        for name in broken:
            try:
                self.ops.restart(name)
                restarted.append(name)
            except Exception:
                _log(logging.ERROR, "labspool control: restarting %s failed", name, exc_info=True)
        if restarted:
            _log(logging.INFO, "labspool control: recover restarts %s", ", ".join(restarted))
        deadline = time.monotonic() + timeout_s
        while restarted and not self._stop.is_set():
            tabs = {t.name: t for t in self.ops.tabs()}
            if all(tabs[n].ready for n in restarted if n in tabs):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._stop.wait(min(self.recover_poll_s, remaining))
        still = _errors(self.ops.tabs())
        unpaused = False
        if not still and self.ops.paused():
            self.ops.set_paused(False)
            unpaused = True
        _log(
            logging.INFO,
            "labspool control: recover restarted %s; still in error: %s; unpaused: %s",
            ", ".join(restarted) or "nothing",
            ", ".join(e["name"] for e in still) or "nothing",
            unpaused,
        )
        return {
            "ok": True,
            "restarted": restarted,
            "still_in_error": still,
            "unpaused": unpaused,
            "was_paused": before.paused,
            "queue_manager_stopped": not before.manager_alive,
        }

    def _recover_later(self, name: str, taken: str, timeout_s: float) -> None:
        """Recover in a thread of its own (the control thread goes on answering); a request
        that comes while a recovery is under way gets its answer."""
        with self._recovering:
            self._recover_waiting.append((name, taken))
            if self._recover_thread is not None:
                return
            self._recover_thread = threading.Thread(
                target=self._recover_and_reply,
                args=(timeout_s,),
                name="labspool-recover",
                daemon=True,
            )
            self._recover_thread.start()

    def _recover_and_reply(self, timeout_s: float) -> None:
        try:
            reply = self.recover(timeout_s)
        except Exception as exc:
            _log(logging.ERROR, "labspool control: recover failed", exc_info=True)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with self._recovering:
            waiting, self._recover_waiting = self._recover_waiting, []
            self._recover_thread = None
        for name, taken in waiting:
            try:
                self._reply(name, taken, dict(reply))
            except Exception:
                _log(logging.ERROR, "labspool control: replying to %s failed", name, exc_info=True)

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


def _errors(tabs: Iterable[TabState]) -> list[dict[str, str]]:
    return [
        {"name": t.name, "message": plain_message(t.error) or t.state} for t in tabs if t.in_error
    ]


_HEADER = re.compile(r"^(Exception in worker|Fatal exception in main process) - .*:$")


def _exceptions(message: str) -> str:
    """A plain message on one line, without BLACS's headers (for a log line)."""
    return " / ".join(line for line in message.splitlines() if not _HEADER.match(line))
