"""The operator's control of the queue: ``cancel``, ``abort``, ``requeue``, ``move``, ``pause``
and ``resume`` (:class:`spooler.pipeline.control.QueueControl` does the work)."""

from __future__ import annotations

import argparse
import getpass
import socket
import time
from collections.abc import Callable

from spooler.cli.common import Subcommands, command, settings_of
from spooler.core.errors import LabspoolError
from spooler.core.jobs import Jobs
from spooler.core.timestamps import parse_time
from spooler.pipeline.control import QueueControl

__all__ = ["add_commands"]


def add_commands(sub: Subcommands) -> None:
    """``cancel``, ``abort``, ``requeue``, ``move``, ``pause`` and ``resume``."""
    p = command(sub, "cancel", _queue_command(_cancel), "cancel a queued or running job")
    p.add_argument("job_id", metavar="JOB")
    p = command(
        sub,
        "abort",
        _queue_command(_abort),
        "stop the running job now (aborts its shot) and pause",
    )
    p.add_argument("job_id", nargs="?", metavar="JOB", help="default: every running job")
    p = command(
        sub,
        "requeue",
        _queue_command(_requeue),
        "run an ERROR or CANCELLED job again (new attempt)",
    )
    p.add_argument("job_id", metavar="JOB")
    p.add_argument("--front", action="store_true", help="at the front of the queue")
    p = command(sub, "move", _queue_command(_move), "change a queued job's place in the queue")
    p.add_argument("job_id", metavar="JOB")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--front", action="store_true")
    where.add_argument("--back", action="store_true")
    where.add_argument("--before", metavar="OTHER")
    p = command(
        sub,
        "pause",
        _queue_command(_pause, create_store=True),
        "take no new job until resume (survives restarts)",
    )
    p.add_argument("--at", metavar="TIME", help="scheduled stop: 18:00, +2h, or ISO 8601")
    p.add_argument("--reason", default="", help="said in the queued jobs' detail")
    command(
        sub,
        "resume",
        _queue_command(_resume, create_store=True),
        "lift a pause or a scheduled stop",
    )


def _queue_command(
    action: Callable[[QueueControl, argparse.Namespace], str], *, create_store: bool = False
) -> Callable[[argparse.Namespace], int]:
    """A command of queue control: *action* gets the operator's :class:`QueueControl` and
    returns what to print.

    With *create_store* a missing job store is created (and the tree's folders with it): an
    operator pauses a machine before its spooler first starts, and the spooler finds the
    pause in the store. The commands that act on jobs refuse instead, since there is none."""

    def run(args: argparse.Namespace) -> int:
        settings = settings_of(args)
        if create_store:
            settings.folders.create()
        elif not settings.folders.database.exists():
            raise LabspoolError(f"no job store at {settings.folders.database}: no job came in yet")
        jobs = Jobs(settings.folders)
        try:
            print(action(QueueControl(jobs, f"{getpass.getuser()}@{socket.gethostname()}"), args))
        finally:
            jobs.close()
        return 0

    return run


def _cancel(control: QueueControl, args: argparse.Namespace) -> str:
    record = control.cancel(args.job_id)
    if record.lab_action:
        return f"{record.job_id}: {record.state}; the spooler withdraws its remaining shots"
    return f"{record.job_id}: {record.state}"


def _abort(control: QueueControl, args: argparse.Namespace) -> str:
    lines = [
        f"{r.job_id}: {r.state} (aborting its shots on the lab)" for r in control.abort(args.job_id)
    ]
    return "\n".join([*lines, "the spooler is paused; `labspool resume` continues with the queue"])


def _requeue(control: QueueControl, args: argparse.Namespace) -> str:
    record = control.requeue(args.job_id, front=args.front)
    position = control.jobs.read.queue_positions([record.job_id])[record.job_id]
    return f"{record.job_id}: QUEUED as attempt {record.attempt}, position {position}"


def _move(control: QueueControl, args: argparse.Namespace) -> str:
    position = control.move(args.job_id, front=args.front, back=args.back, before=args.before)
    return f"{args.job_id}: position {position}"


def _pause(control: QueueControl, args: argparse.Namespace) -> str:
    try:
        at = None if args.at is None else parse_time(args.at, now=time.time())
    except ValueError as exc:
        raise LabspoolError(f"pause --at: {exc}") from exc
    return f"spooler {control.pause(reason=args.reason, at=at).describe()}"


def _resume(control: QueueControl, args: argparse.Namespace) -> str:
    return "resumed" if control.resume() is not None else "the spooler was not paused"
