"""The ``labspool-result`` command line: the result daemon, and reprocessing."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime

from spooler.core.errors import LabspoolError
from spooler.core.logs import setup_logging
from spooler.core.serve import serve
from spooler.core.settings import ENV_VAR, Settings, find_config, load_settings

__all__ = ["main"]


def _since(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date: {text!r} (ISO 8601: 2026-12-01 or 2026-12-01T08:00)"
        ) from None
    return moment.timestamp()  # a date without a zone is local time


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="labspool-result", description="Analyse and archive finished shots; write results."
    )
    parser.add_argument(
        "--config", metavar="PATH", help=f"the configuration file (default: ${ENV_VAR})"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the result daemon (SIGTERM finishes the current step)")
    run.add_argument("--once", action="store_true", help="process what is waiting, then exit")
    again = sub.add_parser(
        "reprocess",
        help="run the analysis again on the archived shots of finished jobs (also while the "
        "daemon runs; resumable: run it again after a kill)",
    )
    again.add_argument("job_ids", metavar="JOB", nargs="*", help="the jobs to reprocess")
    which = again.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every job with archived shots")
    which.add_argument(
        "--since",
        type=_since,
        metavar="DATE",
        help="the jobs with a shot archived at or after DATE (ISO 8601, local time)",
    )
    again.add_argument(
        "--routine",
        action="append",
        metavar="MODULE:FUNCTION",
        help="the routines to run (repeat for several, in order; default: result.routines)",
    )
    again.add_argument(
        "--force",
        action="store_true",
        help="also the shots analysed with these routines already (a kill then starts over)",
    )
    args = parser.parse_args(argv)
    if args.command == "reprocess" and not (args.job_ids or args.all or args.since is not None):
        parser.error("reprocess: name the jobs, or give --all or --since DATE")
    if args.command == "reprocess" and args.job_ids and (args.all or args.since is not None):
        parser.error("reprocess: name the jobs, or give --all or --since, not both")
    try:
        settings = load_settings(find_config(args.config))
        setup_logging(settings.log_level, journal="JOURNAL_STREAM" in os.environ)
        if args.command == "reprocess":
            return _reprocess(settings, args)
        from result.daemon import ResultDaemon

        daemon = ResultDaemon(settings)
    except LabspoolError as exc:
        print(f"labspool-result: {exc}", file=sys.stderr)
        return 2
    try:
        if args.once:
            print(f"finished {daemon.run_once()} shot(s)")
            return 0
        serve(daemon)
        return 0
    finally:
        daemon.close()


def _reprocess(settings: Settings, args: argparse.Namespace) -> int:
    from result.archive import StoreUnavailable
    from result.reprocess import Reprocessor
    from result.reprocessreport import progress_printer

    routines = tuple(args.routine) if args.routine else None
    reprocessor = Reprocessor(settings, routines=routines, force=args.force)
    try:
        if args.job_ids:
            named = reprocessor.job_ids(args.job_ids)
            report = reprocessor.run(named, progress=progress_printer(sys.stderr))
        else:  # every job with archived shots: read a window at a time as the analysis goes
            total = reprocessor.selected_count(args.since)
            when = "" if args.since is None else f" since {datetime.fromtimestamp(args.since)}"
            print(f"reprocessing: {total} job(s) with shots archived{when}", file=sys.stderr)
            selected = reprocessor.selected(args.since)
            report = reprocessor.run(selected, total=total, progress=progress_printer(sys.stderr))
    except StoreUnavailable as exc:  # the store, zlock or the workers: nothing is lost
        print(f"labspool-result: reprocess stopped: {exc}; run it again to go on", file=sys.stderr)
        return 75
    finally:
        reprocessor.close()
    for line in report.summary(reprocessor.version):
        print(line)
    for error in report.errors:
        print(f"failed: {error}", file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
