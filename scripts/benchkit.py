"""What the benchmarks share: their sizes (full or ``--smoke``), the labscript suite in a sandbox
of their own, and their end (``--out``)."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from spooler.core.labprofile import Ports, activate, start_zlock, stop_process, write_profile

__all__ = ["add_sizes", "finish", "labscript_sandbox", "parse_sized"]


def add_sizes(parser: argparse.ArgumentParser, full: Mapping[str, object]) -> None:
    """An option ``--<name>`` for each size of *full*, of its value's type (for
    :func:`parse_sized` to fill when not given)."""
    for name, value in full.items():
        kind = type(value)
        assert kind in (int, float, str), f"{name}: a size is an int, a float or a str"
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help=f"default {value}")


def parse_sized(
    parser: argparse.ArgumentParser,
    full: Mapping[str, object],
    smoke: Mapping[str, object],
    smoke_help: str = "the whole benchmark at a size that takes seconds",
) -> argparse.Namespace:
    """Add ``--smoke`` to *parser*, parse, and fill every size not given (an option of that
    name, default None) from *full*, or with ``--smoke`` from *smoke*."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{smoke_help}: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in smoke.items()),
    )
    args = parser.parse_args()
    for name, value in (smoke if args.smoke else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


@contextlib.contextmanager
def labscript_sandbox(root: Path) -> Iterator[None]:
    """The labscript suite with a profile of its own in ``root/profile`` (never the user's
    home) and its own zlock server, stopped by its process id at the end; the suite's h5 lock
    imported before any h5py."""
    profile, ports = root / "profile", Ports.free()
    write_profile(profile, ports)
    zlock = start_zlock(profile, ports.zlock)
    try:
        activate(profile)
        import labscript_utils.h5_lock  # noqa: F401  (the suite's lock before any h5py)

        yield
    finally:
        stop_process(zlock)


def finish(args: argparse.Namespace, results: Mapping[str, Any]) -> int:
    """After the report: say what a smoke run is worth, write the figures to ``--out``."""
    if args.smoke:
        print("(a smoke run: it shows that the benchmark runs; its figures measure nothing)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0
