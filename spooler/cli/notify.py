"""The ``notify`` commands: ``notify test`` sends a test message to the lab's notify URLs."""

from __future__ import annotations

import argparse

from spooler.cli.common import Subcommands, settings_of

__all__ = ["add_commands"]


def add_commands(sub: Subcommands) -> None:
    """``notify`` and its own commands."""
    notify = sub.add_parser("notify", help="the lab's notifications (notify.urls)")
    notify_sub = notify.add_subparsers(
        dest="notify_command", required=True, metavar="NOTIFY_COMMAND"
    )
    p = notify_sub.add_parser(
        "test", help="send one test message to every notify URL now; exit 0 when delivered"
    )
    p.set_defaults(func=_notify_test)


def _notify_test(args: argparse.Namespace) -> int:
    from spooler.pipeline.notifications import send_test

    problems: list[str] = []
    if send_test(settings_of(args), problems=problems):
        print("delivered")
        return 0
    print(f"not delivered: {'; '.join(problems)}")
    return 1
