"""Where the time of a run goes, stage by stage: functions wrapped in place, each call's time
taken without the stages it calls (so the stages add up to the time they cover).

For benchmarks only: :meth:`StageTimer.wrap` replaces an attribute (a module's function, a
class's method) for the length of a ``with`` block and puts it back afterwards. One thread
(the result daemon with its ``inline`` executor runs every stage on one).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["StageTimer"]


class StageTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._inner: list[float] = []  # per open call: the time of the stages it called
        self._stack = contextlib.ExitStack()

    def timed(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """*function*, its calls' own time added to *stage*."""

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._inner.append(0.0)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                inner = self._inner.pop()
                self.seconds[stage] += elapsed - inner
                self.calls[stage] += 1
                if self._inner:
                    self._inner[-1] += elapsed

        return wrapper

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        """``owner.name`` timed as *stage* until the timer's block ends."""
        original = getattr(owner, name)
        if isinstance(owner, type) and isinstance(owner.__dict__.get(name), staticmethod):
            original = owner.__dict__[name]
            setattr(owner, name, staticmethod(self.timed(stage, original.__func__)))
        else:
            setattr(owner, name, self.timed(stage, original))
        self._stack.callback(setattr, owner, name, original)

    def __enter__(self) -> StageTimer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def table(self, total_s: float, items: int) -> Iterator[tuple[str, float, float]]:
        """(stage, ms per item, share of *total_s*), the largest first, and what no stage
        covered as ``other``."""
        rows = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        for stage, seconds in rows:
            yield stage, 1000 * seconds / items, seconds / total_s
        rest = total_s - sum(self.seconds.values())
        yield "other (the daemon's loop, status files, ...)", 1000 * rest / items, rest / total_s
