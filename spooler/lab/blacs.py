"""The spooler's side of the BLACS plugin's control channel (see the plugin's ``control.py``).

A request is a file in ``<control>/requests/``; the answer appears in ``<control>/replies/``.
No answer within the timeout means BLACS (or the plugin) is not running: the request is
taken back so that it is not carried out later, when nobody waits for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spooler.core.errors import LabUnavailable
from spooler.core.fsutil import write_atomic
from spooler.core.health import BlacsReport

__all__ = ["RECOVER_TIMEOUT_S", "BlacsControl", "Withdrawal"]

RECOVER_TIMEOUT_S = 60.0  # restarting a device tab starts its worker process again


@dataclass(frozen=True, slots=True)
class Withdrawal:
    removed: int  # queued shots taken out of BLACS's queue
    aborted: str | None  # the running shot that was aborted, if any


class BlacsControl:
    def __init__(
        self,
        folder: Path,
        *,
        timeout_s: float = 5.0,
        poll_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = folder / "requests"
        self.replies = folder / "replies"
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.clock = clock

    def request(
        self, action: str, folders: Sequence[Path] = (), *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        self.requests.mkdir(parents=True, exist_ok=True)
        self.replies.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.json"
        document = {"action": action, "folders": [str(f) for f in folders]}
        write_atomic(self.requests / name, json.dumps(document).encode())
        reply = self.replies / name
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = self.clock() + timeout_s
        while not reply.exists():
            if self.clock() >= deadline:
                # (already taken: BLACS acts on it, and the spooler asks again anyway)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.requests / name)
                raise LabUnavailable(
                    f"BLACS did not answer within {timeout_s:g} s "
                    f"(is it running with labspool's plugin? requests go to {self.requests})"
                )
            time.sleep(self.poll_s)
        answer: dict[str, Any] = json.loads(reply.read_bytes())
        reply.unlink()
        if not answer.get("ok"):
            raise LabUnavailable(f"BLACS's plugin failed: {answer.get('error')}")
        return answer

    def unavailable_reason(self) -> str | None:
        try:
            self.request("hello")
        except LabUnavailable as exc:
            return str(exc)
        return None

    def report(self) -> BlacsReport:
        """What the plugin sees of BLACS (its queue, pause, devices in error)."""
        return BlacsReport.parse(self.request("hello"))

    def recover(self, *, timeout_s: float = RECOVER_TIMEOUT_S) -> dict[str, Any]:
        """Restart the device tabs in error and lift BLACS's pause (the plugin's ``recover``)."""
        return self.request("recover", timeout_s=timeout_s)

    def withdraw(self, folders: Sequence[Path], *, abort: bool) -> Withdrawal:
        answer = self.request("abort" if abort else "withdraw", folders)
        return Withdrawal(len(answer.get("removed") or ()), answer.get("aborted"))
