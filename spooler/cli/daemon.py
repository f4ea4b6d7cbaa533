"""The spooler daemon's commands: ``init`` writes a configuration and its folder tree,
``paths`` shows where jobs go in and where status and results come out, ``run`` runs the
daemon."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from spooler.cli.common import Subcommands, command, settings_of
from spooler.core.backends import BACKENDS
from spooler.core.logs import setup_logging
from spooler.core.scaffold import write_tree
from spooler.core.serve import serve

__all__ = ["add_commands"]


def add_commands(sub: Subcommands) -> None:
    """``init``, ``paths`` and ``run``."""
    p = command(sub, "init", _init, "write a working configuration and folder tree under DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--backend", default="singlequdit", choices=sorted(BACKENDS))
    p = command(
        sub, "paths", _paths, "show where to drop jobs and where status and result files appear"
    )
    p.add_argument("--json", action="store_true")
    p = command(
        sub, "run", _run, "run the spooler daemon (SIGTERM finishes the current step, then exits)"
    )
    p.add_argument(
        "--once", action="store_true", help="admit what is waiting, try the lab once, exit"
    )


def _init(args: argparse.Namespace) -> int:
    print(write_tree(args.dir, args.backend))
    return 0


def _paths(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    paths = {name: str(path) for name, path in settings.folders.as_dict().items()}
    paths["config"] = str(settings.path)
    if args.json:
        print(json.dumps(paths, indent=1))
    else:
        width = max(map(len, paths))
        for name, path in paths.items():
            print(f"{name:<{width}}  {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from spooler.pipeline.daemon import Spooler

    settings = settings_of(args)
    setup_logging(settings.log_level, journal="JOURNAL_STREAM" in os.environ)
    spooler = Spooler(settings)
    try:
        if args.once:
            report = spooler.run_once()
            print(f"admitted {report.admitted} job(s), engaged {report.engaged}")
            return 0
        serve(spooler)
        return 0
    finally:
        spooler.close()
