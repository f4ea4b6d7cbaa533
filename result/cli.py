"""The ``labspool-result`` command line: the result daemon."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from spooler.errors import LabspoolError
from spooler.logs import setup_logging
from spooler.serve import serve
from spooler.settings import ENV_VAR, find_config, load_settings

__all__ = ["main"]


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
        "reprocess", help="run the analysis again on a job's archived shots (daemon stopped)"
    )
    again.add_argument("job_id", metavar="JOB")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(find_config(args.config))
        setup_logging(settings.log_level, journal="JOURNAL_STREAM" in os.environ)
        from .daemon import ResultDaemon

        daemon = ResultDaemon(settings)
    except LabspoolError as exc:
        print(f"labspool-result: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "reprocess":
            try:
                done, errors = daemon.reprocess(args.job_id)
            except LabspoolError as exc:
                print(f"labspool-result: {exc}", file=sys.stderr)
                return 2
            print(f"reprocessed {done} shot(s) of {args.job_id}")
            for error in errors:
                print(f"failed: {error}", file=sys.stderr)
            return 1 if errors else 0
        if args.once:
            print(f"finished {daemon.run_once()} shot(s)")
            return 0
        serve(daemon)
        return 0
    finally:
        daemon.close()


if __name__ == "__main__":
    sys.exit(main())
