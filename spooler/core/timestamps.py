"""Time stamps as labspool writes and reads them: ISO 8601, UTC, milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_time", "parse_time"]


def iso_time(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def parse_time(text: str, *, now: float) -> float:
    """A time an operator typed: ISO 8601 (local time when no zone is given), ``HH:MM``
    (the next such time of day), or ``+90m`` / ``+2h`` / ``+30s`` from *now*."""
    text = text.strip()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    if text.startswith("+") and text[-1:] in units:
        try:
            return now + float(text[1:-1]) * units[text[-1]]
        except ValueError:
            pass
    else:
        try:
            if len(text) <= 5 and ":" in text:
                hours, minutes = (int(part) for part in text.split(":"))
                today = datetime.fromtimestamp(now).replace(
                    hour=hours, minute=minutes, second=0, microsecond=0
                )
                stamp = today.timestamp()
                return stamp if stamp > now else stamp + 86400.0
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a time (try 2026-11-22T18:00, 18:00 or +2h)")
