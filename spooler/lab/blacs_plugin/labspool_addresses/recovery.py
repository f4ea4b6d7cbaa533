"""``recover``: BLACS's device tabs in error restarted, then its queue's pause lifted.

The tabs in error are restarted, waited for (up to the request's ``timeout_s``) until they
are idle and out of error, and the queue is unpaused if no tab is in error any more. It runs
in a thread of its own, so that ``hello`` and the withdrawals are answered meanwhile; a
second ``recover`` that comes while one is under way gets that one's answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .logs import log
from .messages import devices_in_error
from .state import QueueOps

__all__ = ["RECOVER_WAIT_S", "Recovery"]

RECOVER_WAIT_S = 45.0  # how long recover waits for the restarted tabs (the request may say)

Reply = Callable[[str, str, dict[str, Any]], None]  # (request's name, its taken path, reply)


class Recovery:
    """Recovers BLACS through *ops*; waits end early once *stop* is set; *reply* answers a
    request (by its name and the path it was taken to)."""

    def __init__(
        self, ops: QueueOps, stop: threading.Event, reply: Reply, *, poll_s: float
    ) -> None:
        self.ops = ops
        self._stop = stop
        self._reply = reply
        self.poll_s = poll_s
        self._recovering = threading.Lock()
        self._recover_waiting: list[tuple[str, str]] = []  # requests the recover answers
        self._recover_thread: threading.Thread | None = None

    def recover(self, timeout_s: float = RECOVER_WAIT_S) -> dict[str, Any]:
        """Restart the device tabs in error, wait up to *timeout_s* for them to be idle and
        out of error, then unpause the queue if no tab is in error any more."""
        before = self.ops.snapshot()
        if not before.manager_alive:
            # Its thread died in the middle of its own error handling, perhaps holding a lock
            # or a device half-way: a new thread took the next shot and hung (tried). Only
            # a new BLACS is safe; the shots it held are made again by labspool.
            log(logging.ERROR, "labspool control: BLACS's queue manager has stopped")
        broken = [t.name for t in before.tabs if t.in_error]
        restarted = []
        for name in broken:
            try:
                self.ops.restart(name)
                restarted.append(name)
            except Exception:
                log(logging.ERROR, "labspool control: restarting %s failed", name, exc_info=True)
        if restarted:
            log(logging.INFO, "labspool control: recover restarts %s", ", ".join(restarted))
        deadline = time.monotonic() + timeout_s
        while restarted and not self._stop.is_set():
            tabs = {t.name: t for t in self.ops.tabs()}
            if all(tabs[n].ready for n in restarted if n in tabs):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._stop.wait(min(self.poll_s, remaining))
        still = devices_in_error(self.ops.tabs())
        unpaused = False
        if not still and self.ops.paused():
            self.ops.set_paused(False)
            unpaused = True
        log(
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

    def recover_later(self, name: str, taken: str, timeout_s: float) -> None:
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
            log(logging.ERROR, "labspool control: recover failed", exc_info=True)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with self._recovering:
            waiting, self._recover_waiting = self._recover_waiting, []
            self._recover_thread = None
        for name, taken in waiting:
            try:
                self._reply(name, taken, dict(reply))
            except Exception:
                log(logging.ERROR, "labspool control: replying to %s failed", name, exc_info=True)
