"""A progress line on a stream (standard error): on a terminal one line rewritten in place,
elsewhere (a file, a pipe, a journal) a line each time it is said. What is said and how
often is the caller's (``labspool status``'s listing, ``labspool-result reprocess``)."""

from __future__ import annotations

from typing import TextIO

__all__ = ["ProgressLine"]


class ProgressLine:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.terminal = stream.isatty()

    def say(self, text: str, *, end: bool = False) -> None:
        """*text* as the line now; *end*: the last (a terminal's line is then ended)."""
        if self.terminal:
            self._stream.write(f"\r{text}\x1b[K" + ("\n" if end else ""))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
