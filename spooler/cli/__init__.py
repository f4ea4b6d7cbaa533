"""``labspool``: the command line (``main``, with a module per group of commands: ``daemon``,
``jobs``, ``queue``, ``lab``, ``gateway``, ``notify``) and the systemd units (``services``).

It may import every other part of the spooler; nothing imports it."""

from __future__ import annotations

from spooler.cli.main import main

__all__ = ["main"]
