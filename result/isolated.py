"""A suspect shot handled in a process of its own, so that a crash on it is seen.

When a process died while it handled a shot, the next result daemon cannot tell why: the
shot may crash a library (a segfault on a damaged file, an analysis routine that ends its
process, memory running out), or the daemon may have been killed from outside (kill -9, a
power cut). So it handles that shot again in a child, ``python -m result.isolated``, and
waits: a child that ends by a signal or with an unexpected exit code is a death *seen* on
that shot, counted against it; a child that finishes leaves the shot done (ledger, store,
status files, exactly as the daemon would have) and the daemon goes on.

The child holds no lock of the tree (its parent holds it and waits), and dies with its
parent (``PR_SET_PDEATHSIG``), so a daemon killed while it waits never leaves a child
working on a shot the next daemon takes up.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IsolatedOutcome", "main", "run_isolated"]

EXIT_DONE = 0
EXIT_STORE_UNAVAILABLE = 75  # EX_TEMPFAIL: the store is away; the daemon waits and retries
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class IsolatedOutcome:
    death: str | None = None  # how the child died (None: it finished)
    store_unavailable: bool = False


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def run_isolated(config: Path, address: Path, *, timeout_s: float) -> IsolatedOutcome:
    """Handle the claimed *address* in a child process; returns how it ended."""
    argv = ["--config", str(config), "--parent", str(os.getpid()), str(address)]
    child = subprocess.Popen([sys.executable, "-m", "result.isolated", *argv])
    try:
        code = child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return IsolatedOutcome(death=f"it did not finish in {timeout_s:.0f} s and was killed")
    if code == EXIT_DONE:
        return IsolatedOutcome()
    if code == EXIT_STORE_UNAVAILABLE:
        return IsolatedOutcome(store_unavailable=True)
    return IsolatedOutcome(death=_describe(code))


def _die_with(parent: int) -> None:
    """Linux: this process gets SIGKILL when its parent dies; if it died already, exit."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # elsewhere only the check below
    if os.getppid() != parent:
        os._exit(EXIT_STORE_UNAVAILABLE)  # the daemon is gone: leave the shot to the next one


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m result.isolated")
    parser.add_argument("--config", required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("address")
    args = parser.parse_args(argv)
    _die_with(args.parent)

    from spooler.headless import headless
    from spooler.logs import setup_logging
    from spooler.settings import load_settings

    from .archive import StoreUnavailable
    from .daemon import ResultDaemon

    headless()
    settings = load_settings(args.config)
    setup_logging(settings.log_level, journal="JOURNAL_STREAM" in os.environ)
    daemon = ResultDaemon(settings, exclusive=False)
    try:
        daemon.take_alone(Path(args.address))
    except StoreUnavailable:
        return EXIT_STORE_UNAVAILABLE
    finally:
        daemon.close()
    return EXIT_DONE


if __name__ == "__main__":
    sys.exit(main())
