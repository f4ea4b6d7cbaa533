"""The HTTP gateway's commands: ``web`` serves it, ``user`` manages its users and their tokens
(:mod:`spooler.gateway.users`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from spooler.cli.common import Subcommands, settings_of
from spooler.core.errors import ConfigError
from spooler.core.store import JobStore
from spooler.core.timestamps import iso_time
from spooler.gateway.users import LIMIT_NAMES, UnknownUser, UserError, UserRecord, Users

__all__ = ["add_commands"]


def add_commands(sub: Subcommands) -> None:
    """``web`` and ``user`` with its own commands."""
    p = sub.add_parser(
        "web", help="the HTTP gateway of the qiskit-cold-atom client (API v2), in the foreground"
    )
    p.add_argument(
        "--listen", metavar="HOST:PORT", help="where to listen (default: gateway.listen)"
    )
    p.add_argument("--ssl-certfile", type=Path, help="TLS: the certificate (PEM), with its key")
    p.add_argument("--ssl-keyfile", type=Path, help="TLS: the certificate's private key (PEM)")
    p.set_defaults(func=_web)

    user = sub.add_parser("user", help="the users of the HTTP gateway and their tokens")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="USER_COMMAND")
    p = user_sub.add_parser(
        "add",
        help="make a user with a new token; prints the token once, keeps only its hash",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--operator", action="store_true", help="the user is an operator")
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace an existing user of that name (a new token; the old one stops working; "
        "operator flag and limits as given here)",
    )
    p.add_argument(
        "--queued-jobs-max", type=int, metavar="N", help="default: gateway.queued_jobs_max"
    )
    p.add_argument(
        "--requests-per-s", type=float, metavar="R", help="default: gateway.requests_per_s"
    )
    p.add_argument("--job-bytes-max", type=int, metavar="B", help="default: gateway.job_bytes_max")
    p.set_defaults(func=_user_command(_user_add, create_store=True))
    p = user_sub.add_parser("list", help="the users: operator or not, created, last used, limits")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_user_command(_user_list))
    p = user_sub.add_parser("remove", help="remove a user: their token stops working at once")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_user_command(_user_remove))


def _web(args: argparse.Namespace) -> int:
    from spooler.gateway.server import serve

    settings = settings_of(args)
    host, port = settings.gateway.address
    if args.listen is not None:
        host, _, text = args.listen.rpartition(":")
        if not host or not text.isdigit() or not 0 < int(text) < 65536:
            raise ConfigError(f"--listen {args.listen!r}: give HOST:PORT, e.g. 127.0.0.1:8090")
        port = int(text)
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
    serve(
        settings,
        host,
        port,
        ssl_certfile=None if args.ssl_certfile is None else str(args.ssl_certfile),
        ssl_keyfile=None if args.ssl_keyfile is None else str(args.ssl_keyfile),
    )
    return 0


def _user_command(
    action: Callable[[Users | None, argparse.Namespace], str], *, create_store: bool = False
) -> Callable[[argparse.Namespace], int]:
    """A command on the gateway's users (:mod:`spooler.gateway.users`): *action* gets them (None
    when there is no job store yet and *create_store* is false) and returns what to print.
    A refusal (an unknown or existing user, a bad name) exits 1."""

    def run(args: argparse.Namespace) -> int:
        settings = settings_of(args)
        if create_store:
            settings.folders.create()
        database = settings.folders.database
        # without create_store, a missing store is not made (listing creates nothing)
        store = JobStore(database) if create_store or database.exists() else None
        try:
            print(action(None if store is None else Users(store, settings), args))
        except UserError as exc:
            print(f"labspool: {exc}", file=sys.stderr)
            return 1
        finally:
            if store is not None:
                store.close()
        return 0

    return run


def _user_add(users: Users | None, args: argparse.Namespace) -> str:
    assert users is not None
    user, token = users.add(
        args.name,
        operator=args.operator,
        replace=args.replace,
        queued_jobs_max=args.queued_jobs_max,
        job_bytes_max=args.job_bytes_max,
        requests_per_s=args.requests_per_s,
    )
    role = "an operator" if user.operator else "a user"
    done = "replaced (the old token no longer works)" if args.replace else "added"
    return "\n".join(
        [
            f"{user.name}: {done}, {role}; {user.queued_jobs_max} queued jobs, "
            f"{user.job_bytes_max} bytes a job, {user.requests_per_s:g} requests/s at most",
            "the token, shown only this once (labspool keeps only its hash):",
            token,
        ]
    )


def _user_list(users: Users | None, args: argparse.Namespace) -> str:
    records = [] if users is None else users.records()
    if args.json:
        return json.dumps(
            [
                {
                    "name": r.user.name,
                    "operator": r.user.operator,
                    "created_at": iso_time(r.created_at),
                    "last_used_at": iso_time(r.last_used_at),
                    "queued_jobs_max": r.user.queued_jobs_max,
                    "job_bytes_max": r.user.job_bytes_max,
                    "requests_per_s": r.user.requests_per_s,
                    "own_limits": dict(r.own_limits),
                }
                for r in records
            ],
            indent=1,
        )
    if not records:
        return "no users (`labspool user add NAME` makes one)"

    def limit(record: UserRecord, name: str) -> str:
        value = getattr(record.user, name)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{shown}*" if name in record.own_limits else shown

    header = ("NAME", "OPERATOR", "CREATED", "LAST USED", *(n.upper() for n in LIMIT_NAMES))
    rows = [
        (
            r.user.name,
            "yes" if r.user.operator else "no",
            iso_time(r.created_at) or "",
            iso_time(r.last_used_at) or "never",
            *(limit(r, n) for n in LIMIT_NAMES),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    if any(r.own_limits for r in records):
        lines.append("* the user's own limit (the others: the gateway section's)")
    return "\n".join(lines)


def _user_remove(users: Users | None, args: argparse.Namespace) -> str:
    if users is None:
        raise UnknownUser(f"there is no user {args.name!r}: there is no job store yet")
    users.remove(args.name)
    return f"{args.name}: removed; their token no longer works"
