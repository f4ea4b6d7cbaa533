"""What the worker pool's tests have its workers do (imported in each worker)."""

from __future__ import annotations

import os
import time
from typing import Any


def work(what: Any) -> tuple[str, int]:
    """("echo", x): x back with the worker's pid; ("sleep", s); ("exit", code): the worker
    ends itself; ("raise", message); ("hang", _): never returns."""
    kind, value = what
    if kind == "sleep":
        time.sleep(value)
    elif kind == "exit":
        os._exit(value)
    elif kind == "raise":
        raise ValueError(value)
    elif kind == "hang":
        while True:
            time.sleep(1)
    return value, os.getpid()


def broken_warm_up() -> None:
    os._exit(7)
