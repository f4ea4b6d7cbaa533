"""A device tab's error message (HTML, with BLACS's headers and tracebacks) as plain text.

BLACS's message is a header per failure ("Exception in worker - <time>:", "Fatal exception
in main process - <time>:") and its traceback; the plugin reports and logs the exception
lines only (the frames are in BLACS's log).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from .state import TabState

__all__ = ["MESSAGE_MAX_CHARS", "devices_in_error", "one_line", "plain_message"]

MESSAGE_MAX_CHARS = 500


def plain_message(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """A tab's error message (HTML) as plain text of at most about *limit* characters.

    BLACS's message is a header per failure ("Exception in worker - <time>:", "Fatal
    exception in main process - <time>:") and its traceback: of a traceback only the
    exception line is kept (the frames are in BLACS's log). A text still too long keeps its
    beginning and its last line."""
    text = re.sub(r"(?i)<br\s*/?>", "\n", text)
    text = re.sub(r"<[^>]*>", "", text)
    text = html.unescape(text).replace("\xa0", " ")
    lines, in_traceback = [], False
    for line in text.splitlines():
        if line.strip() == "Traceback (most recent call last):":
            in_traceback = True
        elif in_traceback and (not line.strip() or line[:1].isspace()):
            pass  # a frame, or its line of code
        elif line.strip():
            in_traceback = False
            lines.append(line.strip())
    whole = "\n".join(lines)
    if len(whole) <= limit:
        return whole
    last = lines[-1][-limit:]
    room = limit - len(last) - 3
    if room <= 0:
        return last
    return f"{whole[:room].rstrip()}\n…\n{last}"


def devices_in_error(tabs: Iterable[TabState]) -> list[dict[str, str]]:
    """The tabs in error, each ``{"name", "message"}`` (the message as plain text)."""
    return [
        {"name": t.name, "message": plain_message(t.error) or t.state} for t in tabs if t.in_error
    ]


_HEADER = re.compile(r"^(Exception in worker|Fatal exception in main process) - .*:$")


def one_line(message: str) -> str:
    """A plain message on one line, without BLACS's headers (for a log line)."""
    return " / ".join(line for line in message.splitlines() if not _HEADER.match(line))
