"""The ``labspool`` command line: its parser's top (``--version``, ``--config``), the commands
in the order of its help, and ``main``, which runs the chosen command and turns errors into
exit codes. Each group of commands is a module beside this one."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from spooler import __version__
from spooler.cli import daemon, gateway, jobs, lab, notify, prune, queue
from spooler.core.errors import ConfigError, LabspoolError
from spooler.core.settings import ENV_VAR

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, LabspoolError) as exc:
        print(f"labspool: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`labspool status | head`): end quietly, as a shell tool does;
        # what Python would still flush at exit goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labspool", description="Run remote quantum-simulator jobs on a labscript machine."
    )
    parser.add_argument("--version", action="version", version=f"labspool {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help=f"the configuration file (default: ${ENV_VAR})"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    daemon.add_commands(sub)  # init, paths, run
    jobs.add_commands(sub)  # submit, validate, status
    queue.add_commands(sub)  # cancel, abort, requeue, move, pause, resume
    jobs.add_schema(sub)
    lab.add_commands(sub)
    gateway.add_commands(sub)  # web, user
    notify.add_commands(sub)
    prune.add_commands(sub)  # prune
    return parser


if __name__ == "__main__":
    sys.exit(main())
