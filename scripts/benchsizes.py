"""What the benchmarks share: their sizes, full or ``--smoke``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

__all__ = ["parse_sized"]


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
