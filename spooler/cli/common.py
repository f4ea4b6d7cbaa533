"""What every command module shares: how a command is declared on the parser, and the
settings it works on (the configuration file of ``--config``, else of the environment)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from spooler.core.settings import Settings, find_config, load_settings

Handler: TypeAlias = Callable[[argparse.Namespace], int]
"""A command's function: it gets the parsed arguments and returns the exit code."""

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""Where a command module adds its commands (``ArgumentParser.add_subparsers``'s result)."""


def command(sub: Subcommands, name: str, func: Handler, text: str) -> argparse.ArgumentParser:
    """A command *name* that runs *func*; *text* is both its line in the help and its
    description."""
    p = sub.add_parser(name, help=text, description=text)
    p.set_defaults(func=func)
    return p


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of the configuration that ``--config`` names, else ``$LABSPOOL_CONFIG``."""
    return load_settings(find_config(args.config))
