"""The folders withdrawn from BLACS: refused for a while, remembered across BLACS's restarts.

A withdrawn folder (a job's experiment and attempt) is refused for ``linger_s``: runmanager
may still be compiling its shots, and stops at the first refusal. For ``sweep_s`` after a
withdrawal the queue is looked through as well, for a shot whose ``process_request`` was
under way when the withdrawal came. The folders are kept in ``<control>/withdrawn.json``,
written whole and flushed before the queue is touched: BLACS restores its saved queue before
the plugins start, so a plugin started again sweeps that queue and goes on refusing them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable

from .documents import REQUEST_MAX_BYTES, publish
from .files import fsync_folder
from .logs import log
from .state import QueueOps

__all__ = ["Withdrawals", "in_folders"]


def in_folders(path: str, folders: Iterable[str]) -> bool:
    """Whether the shot *path* lies in one of *folders* (absolute paths)."""
    return os.path.dirname(os.path.abspath(path)) in folders


class Withdrawals:
    """The folders withdrawn from BLACS's queue (kept in *folder*'s ``withdrawn.json``)."""

    def __init__(
        self,
        folder: str,
        ops: QueueOps,
        *,
        linger_s: float,
        sweep_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.folder = folder
        self.memory = os.path.join(folder, "withdrawn.json")
        self.ops = ops
        self.linger_s = linger_s
        self.sweep_s = sweep_s
        self.clock = clock
        self.lingering: dict[str, float] = self._recall()  # withdrawn folder -> until when
        # BLACS restored its saved queue before the plugin started: sweep it for a while
        self._sweep_until = self.clock() + sweep_s if self.lingering else float("-inf")

    def withdraw(self, folders: Iterable[str]) -> None:
        """Refuse *folders* from now on (for ``linger_s``), remembered before anything else."""
        until = self.clock() + self.linger_s
        self._sweep_until = self.clock() + self.sweep_s
        for folder in folders:
            self.lingering[folder] = until
        self._remember()

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
            log(
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
        publish(self.folder, "withdrawn.json", self.lingering)
        fsync_folder(self.folder)

    def sweep(self) -> None:
        """Forget the folders whose time is over; take late shots of the others out of the
        queue while a withdrawal is recent."""
        now = self.clock()
        current = {f: t for f, t in self.lingering.items() if t > now}
        if len(current) != len(self.lingering):
            self.lingering = current
            self._remember()
        # (asking BLACS's main thread for the queue ten times a second, only while it matters)
        if self.lingering and now < self._sweep_until:
            late = [p for p in self.ops.queued() if in_folders(p, self.lingering)]
            if late:
                removed = self.ops.remove(late)
                log(
                    logging.INFO,
                    "labspool control: removed %d late shot(s) of withdrawn jobs",
                    len(removed),
                )
