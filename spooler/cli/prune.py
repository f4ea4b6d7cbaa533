"""The ``prune`` command: the files of ended jobs past their retention removed, and the job
store kept (:mod:`spooler.core.retention`); what it did, kind by kind, in counts and bytes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from spooler.cli.common import Subcommands, command, settings_of
from spooler.core.retention import Pruner, PruneReport, Swept
from spooler.core.timestamps import iso_time

__all__ = ["add_commands"]


def add_commands(sub: Subcommands) -> None:
    """``prune``."""
    p = command(
        sub,
        "prune",
        _prune,
        "remove the files of ended jobs older than the retention section says; keep the store",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be removed; change nothing"
    )
    p.add_argument(
        "--vacuum",
        action="store_true",
        help="also rewrite the job store without its free pages (VACUUM); the daemons must "
        "be stopped",
    )
    p.add_argument("--json", action="store_true", help="the report as one JSON document")


def _prune(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    report = Pruner(settings, dry_run=args.dry_run).run(vacuum=args.vacuum and not args.dry_run)
    if args.json:
        print(json.dumps(as_json(report), indent=1))
    else:
        print(render(report))
    for error in report.errors:
        print(f"labspool prune: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def render(report: PruneReport) -> str:
    """The report for a person: a line per kind, then the store's."""
    verb = "would remove" if report.dry_run else "removed"
    width = max(len(s.kind) for s in report.kinds)
    lines = []
    for swept in report.kinds:
        if swept.days is None:
            what = f"kept for ever (retention.{swept.kind}_days: null)"
        else:
            what = (
                f"{verb} {swept.removed} {swept.unit}{'' if swept.removed == 1 else 's'} "
                f"({_size(swept.bytes)}) of jobs ended "
                f"{_days(swept.days)} ago or more"
            )
            if swept.errors:
                what += f"; {len(swept.errors)} could not be removed"
        lines.append(f"{swept.kind:<{width}}  {what}")
    if report.stale_temps_removed:
        lines.append(
            f"{'temporary':<{width}}  removed {report.stale_temps_removed} file(s) that killed "
            "writers left in status/, results/ or quarantine/"
        )
    store = report.store
    if report.dry_run:
        lines.append(f"{'store':<{width}}  untouched (dry run)")
    elif store is not None:
        done = "statistics refreshed, " + ("vacuumed, " if store.vacuumed else "")
        done += "write-ahead log checkpointed" + (
            "" if store.log_truncated else " in part (a reader was busy)"
        )
        lines.append(
            f"{'store':<{width}}  {done}: {_size(store.bytes_before)} -> {_size(store.bytes_after)}"
        )
    return "\n".join(lines)


def as_json(report: PruneReport) -> dict[str, Any]:
    store = report.store
    return {
        "at": iso_time(report.at),
        "dry_run": report.dry_run,
        "kinds": {swept.kind: _swept_json(swept) for swept in report.kinds},
        "stale_temps_removed": report.stale_temps_removed,
        "store": None
        if store is None
        else {
            "vacuumed": store.vacuumed,
            "log_truncated": store.log_truncated,
            "log_bytes_before": store.log_bytes_before,
            "bytes_before": store.bytes_before,
            "bytes_after": store.bytes_after,
        },
    }


def _swept_json(swept: Swept) -> dict[str, Any]:
    return {
        "days": swept.days,
        "ended_before": iso_time(swept.before),
        "unit": swept.unit,
        "removed": swept.removed,
        "bytes": swept.bytes,
        "errors": swept.errors,
    }


def _days(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def _size(count: int) -> str:
    if count < 1000:
        return f"{count} bytes"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if count < scale * 1000:
            return f"{count / scale:.1f} {unit}"
    return f"{count / 1e12:.1f} TB"
