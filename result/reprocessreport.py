"""What ``labspool-result reprocess`` tells while it runs and when it ends: how far it is
(:class:`Progress`, shown by :func:`progress_printer`) and what it did (:class:`Report`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from spooler.core.progressline import ProgressLine

__all__ = ["NAMED_MAX", "Named", "Progress", "Report", "progress_printer"]

NAMED_MAX = 20  # jobs rewritten named one a line; more are counted


@dataclass
class Progress:
    """How far a run is. A job is done once its outputs are written again (or it was skipped,
    or its shots failed); *total*: the shots to analyse of the jobs read so far, all of them
    once *read_all* (until then the share done and the time left are the jobs')."""

    jobs_total: int
    jobs_done: int = 0
    total: int = 0
    done: int = 0
    failed: int = 0
    read_all: bool = False
    ended: bool = False
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.started)
        shots = self.done + self.failed
        rate = shots / elapsed
        failed = f", {self.failed} failed" if self.failed else ""
        jobs = f"{self.jobs_done}/{self.jobs_total} jobs"
        if self.read_all:
            left = self.total - shots
            eta = f", {left / rate:.0f} s left" if rate > 0 and left else ""
            share = 100.0 * shots / self.total if self.total else 100.0
            return (
                f"reprocessing: {shots}/{self.total} shots ({share:.0f}%){failed}, {jobs}, "
                f"{rate:.1f} shots/s{eta}"
            )
        jobs_left, jobs_rate = self.jobs_total - self.jobs_done, self.jobs_done / elapsed
        eta = f", about {jobs_left / jobs_rate:.0f} s left" if jobs_rate and jobs_left > 0 else ""
        share = 100.0 * self.jobs_done / self.jobs_total if self.jobs_total else 0.0
        return (
            f"reprocessing: {shots}/{self.total}+ shots{failed}, {jobs} ({share:.0f}%), "
            f"{rate:.1f} shots/s{eta}"
        )


@dataclass
class Named:
    """How many, and the first :data:`NAMED_MAX` of them by name: ``--all`` over a year
    rewrites 100,000 jobs, whose names are not kept."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        self.count += 1
        if len(self.first) < NAMED_MAX:
            self.first.append(name)


@dataclass
class Report:
    jobs: int = 0  # taken on or skipped
    shots: int = 0  # reprocessed now
    skipped: int = 0  # carried the version already
    errors: list[str] = field(default_factory=list)
    jobs_rewritten: Named = field(default_factory=Named)
    jobs_skipped: list[str] = field(default_factory=list)  # not finished
    workers: set[str] = field(default_factory=set)  # host:pid of the processes that ran tasks

    def summary(self, version: str) -> list[str]:
        """What the reprocess did, for stdout: the counts, the workers, the jobs rewritten
        (the first :data:`NAMED_MAX` by name, the others counted) and the jobs skipped."""
        lines = [
            f"reprocessed {self.shots} shot(s) of {self.jobs} job(s) with {version}"
            + (f"; {self.skipped} carried that version already" if self.skipped else "")
        ]
        if self.workers:
            lines.append("analysed by: " + ", ".join(sorted(self.workers)))
        rewritten = self.jobs_rewritten
        lines += [f"{job_id}: CSVs and result rewritten" for job_id in rewritten.first]
        if rewritten.count > len(rewritten.first):
            more = rewritten.count - len(rewritten.first)
            lines.append(f"... and {more} more jobs' CSVs and results rewritten")
        lines += [
            f"{job_id}: skipped, not finished (reprocess it once it has ended)"
            for job_id in self.jobs_skipped
        ]
        return lines


def progress_printer(stream: TextIO) -> Callable[[Progress], None]:
    """A progress bar on a terminal (one line, redrawn), else a line every 5 s."""
    line = ProgressLine(stream)
    last = [0.0]

    def show(state: Progress) -> None:
        now = time.monotonic()
        if line.terminal or state.ended or now - last[0] >= 5.0:
            line.say(state.line(), end=state.ended)
            last[0] = now

    return show
