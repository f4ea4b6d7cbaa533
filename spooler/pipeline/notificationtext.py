"""What a notification says: its title and body, one event's or a digest of several.

Every title begins with the machine (the backend) and the host, and so does every body;
each event in a body ends with what to do.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from spooler.core.settings import Settings
from spooler.core.store import NotificationRow
from spooler.core.timestamps import iso_time

__all__ = ["WHAT_TO_DO", "compose", "origin_of", "with_what_to_do"]

WHAT_TO_DO = "What to do:"


def origin_of(settings: Settings) -> tuple[str, str]:
    """(the titles' prefix, the bodies' first line): the machine and the host."""
    host = socket.gethostname()
    return (
        f"[labspool {settings.backend}@{host}]",
        f"labspool, machine (backend) {settings.backend}, host {host}",
    )


def with_what_to_do(body: str) -> str:
    body = body.rstrip()
    if WHAT_TO_DO in body:
        return body
    return (
        f"{body}\n{WHAT_TO_DO} look at `labspool status` and the spooler's log "
        "(journalctl -u labspool-spooler)."
    )


def compose(
    rows: Sequence[NotificationRow], prefix: str, origin: str, messages_per_hour_max: int
) -> tuple[str, str]:
    """A message's title and body: one row's, or a digest of several."""
    if len(rows) == 1:
        row = rows[0]
        return (
            f"{prefix} {row.title}",
            f"{origin}, {iso_time(row.at)}\n\n{with_what_to_do(row.body)}",
        )
    head = (
        f"{len(rows)} messages held back by the rate limit "
        f"(notify.messages_per_hour_max: {messages_per_hour_max})"
    )
    listing = "\n".join(f"- {row.title} ({iso_time(row.at)})" for row in rows)
    sections = "\n\n".join(
        f"{number}. {row.title} ({iso_time(row.at)})\n{with_what_to_do(row.body)}"
        for number, row in enumerate(rows, 1)
    )
    return (
        f"{prefix} {head}",
        f"{origin}\n\n{head}:\n{listing}\n\n{sections}",
    )
