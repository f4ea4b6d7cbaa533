"""Helpers for the tests that run the genuine labscript suite (no fakes here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from spooler.core.settings import Settings, load_settings

# find_spec, not import: importing the suite here would start servers in the test process.
needs_suite = pytest.mark.skipif(
    find_spec("blacs") is None or find_spec("runmanager") is None,
    reason="the lab extra (labscript suite) is not installed",
)


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spooler.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def in_lab(root: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run Python *code* in a child process with the lab's labscript profile."""
    from spooler.virtual.lab import lab_environment

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=lab_environment(root),
        cwd=root,
    )


def binomial_p_value(counts: Any, atoms: int, p_up: float) -> float:
    """Chi-square goodness of fit of *counts* to Binomial(atoms, p_up), in ~8 bins."""
    import numpy as np
    from scipy import stats

    edges = np.unique(stats.binom.ppf(np.linspace(0, 1, 9)[1:-1], atoms, p_up))
    bins = np.concatenate(([-0.5], edges + 0.5, [atoms + 0.5]))
    observed = np.histogram(counts, bins)[0]
    cdf = stats.binom.cdf(bins[1:] - 0.5, atoms, p_up) - stats.binom.cdf(
        bins[:-1] - 0.5, atoms, p_up
    )
    return float(stats.chisquare(observed, cdf / cdf.sum() * len(counts)).pvalue)


def distribution_p_value(memory: list[str], expected: dict[str, float]) -> float:
    """Chi-square goodness of fit of the memory entries to an exact distribution of them;
    outcomes expected fewer than 5 times are pooled into one bin (with anything unexpected)."""
    from scipy import stats

    shots = len(memory)
    seen: dict[str, int] = {}
    for entry in memory:
        seen[entry] = seen.get(entry, 0) + 1
    big = [k for k, p in expected.items() if p * shots >= 5]
    observed = [seen.get(k, 0) for k in big]
    means = [expected[k] * shots for k in big]
    rest_observed = shots - sum(observed)
    rest_mean = shots - sum(means)
    if rest_mean > 1e-9 or rest_observed:
        if rest_mean < 1e-9:
            return 0.0  # an outcome the model forbids
        observed.append(rest_observed)
        means.append(rest_mean)
    if len(observed) < 2:
        return 1.0 if observed[0] == shots else 0.0
    return float(stats.chisquare(observed, means).pvalue)


def lab_role(root: Path, action: str, role: str) -> subprocess.CompletedProcess[str]:
    """Stop or start one program of the lab (in a child: it needs the lab's profile)."""
    return in_lab(
        root,
        f"from pathlib import Path\nfrom spooler.virtual.lab import {action}_role\n"
        f"{action}_role(Path({str(root)!r}), {role!r})\n",
    )


class _Changed(FileSystemEventHandler):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.event.set()


def wait_until(folder: Path, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Wait for *condition*, re-checking whenever something changes in *folder*."""
    changed = threading.Event()
    observer = Observer()
    observer.schedule(_Changed(changed), str(folder), recursive=True)
    observer.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            changed.wait(min(remaining, 5.0))  # the 5 s cap re-checks in case an event was lost
            changed.clear()
    finally:
        observer.stop()
        observer.join()


@dataclass
class VirtualLab:
    root: Path
    config: Path
    settings: Settings
    pids: dict[str, int]
    spooler: subprocess.Popen[bytes] | None = None
    result: subprocess.Popen[bytes] | None = None

    def _daemon(self, module: str, log_name: str) -> subprocess.Popen[bytes]:
        log = (self.root / log_name).open("ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", module, "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()

    @staticmethod
    def _end(process: subprocess.Popen[bytes] | None, sig: int) -> None:
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def start_result_daemon(self, *, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start `labspool-result run`; with *wait*, return once it holds its lock."""
        self.result = result = self._daemon("result.cli", "result.log")
        if wait:
            lock = self.settings.folders.state / "result.lock"
            pid = str(result.pid)
            wait_until(
                lock.parent,
                lambda: lock.exists() and lock.read_text().strip() == pid,
                60,
                "the result daemon to hold its lock",
            )
        return result

    def stop_result_daemon(self, sig: int = signal.SIGTERM) -> None:
        self._end(self.result, sig)
        self.result = None

    def start_spooler(self) -> subprocess.Popen[bytes]:
        self.spooler = self._daemon("spooler.cli", "spooler.log")
        return self.spooler

    def stop_spooler(self, sig: int = signal.SIGTERM) -> None:
        self._end(self.spooler, sig)
        self.spooler = None

    def labspool(self, *argv: str) -> str:
        """Run a `labspool` command against this lab; returns its output (it must succeed)."""
        result = cli("--config", str(self.config), *argv)
        assert result.returncode == 0, f"labspool {' '.join(argv)}: {result.stderr}"
        return result.stdout

    def status(self, job_id: str) -> dict[str, Any]:
        path = self.settings.folders.status / f"{job_id}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def submit(self, job_id: str, job: dict[str, Any], tmp: Path) -> None:
        source = tmp / f"{job_id}.json"
        source.write_text(json.dumps(job))
        result = cli("--config", str(self.config), "submit", str(source), "--id", job_id)
        assert result.returncode == 0, result.stderr

    def addresses(self, job_id: str | None = None) -> list[dict[str, Any]]:
        records = [
            json.loads(p.read_text())
            for p in sorted(self.settings.folders.addresses.glob("*.json"))
        ]
        return [r for r in records if job_id is None or r["job_id"] == job_id]

    def wait_for_addresses(
        self, job_id: str, count: int, timeout_s: float = 300
    ) -> list[dict[str, Any]]:
        wait_until(
            self.settings.folders.addresses,
            lambda: len(self.addresses(job_id)) >= count,
            timeout_s,
            f"{count} address files of {job_id}",
        )
        return self.addresses(job_id)

    def wait_for_status(
        self, job_id: str, condition: Callable[[dict[str, Any]], bool], timeout_s: float = 120
    ) -> dict[str, Any]:
        wait_until(
            self.settings.folders.status,
            lambda: condition(self.status(job_id)),
            timeout_s,
            f"the status of {job_id}",
        )
        return self.status(job_id)


@contextmanager
def virtual_lab(
    root: Path,
    *,
    look_ahead_jobs: int | None = None,
    look_ahead_shots: int | None = None,
    load_time_s: float | None = None,
    result_daemon: bool = False,
    prepare: Callable[[Path], None] | None = None,
    backend: str | None = None,
) -> Iterator[VirtualLab]:
    """`labspool lab up`, a spooler process (and a result daemon), all stopped by pid after.

    *look_ahead_jobs*, *look_ahead_shots*: the lab's (None: labspool's defaults).
    *prepare* may change the lab's configuration file before the daemons start.
    *backend*: the virtual machine (None: the default, singlequdit)."""
    argv = ["lab", "up", str(root)]
    if backend is not None:
        argv += ["--backend", backend]
    if look_ahead_jobs is not None:
        argv += ["--look-ahead-jobs", str(look_ahead_jobs)]
    if look_ahead_shots is not None:
        argv += ["--look-ahead-shots", str(look_ahead_shots)]
    if load_time_s is not None:
        argv += ["--load-time-s", repr(load_time_s)]
    up = cli(*argv)
    assert up.returncode == 0, up.stderr + up.stdout
    config = Path(up.stdout.strip().splitlines()[-1])
    pids = json.loads((root / "lab" / "processes.json").read_text())
    if prepare is not None:
        prepare(config)
    lab = VirtualLab(root, config, load_settings(config), pids)
    if result_daemon:
        lab.start_result_daemon()
    lab.start_spooler()
    try:
        yield lab
    finally:
        lab.stop_result_daemon()
        lab.stop_spooler()
        cli("lab", "down", str(root))
