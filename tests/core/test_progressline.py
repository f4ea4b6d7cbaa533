"""The progress line: rewritten in place on a terminal, a line each elsewhere."""

from __future__ import annotations

import io

from spooler.core.progressline import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_has_one_line_rewritten_and_ended_once() -> None:
    out = Terminal()
    line = ProgressLine(out)
    line.say("1 of 3")
    line.say("3 of 3", end=True)
    assert out.getvalue() == "\r1 of 3\x1b[K\r3 of 3\x1b[K\n"


def test_elsewhere_each_is_a_line_of_its_own() -> None:
    out = io.StringIO()
    line = ProgressLine(out)
    line.say("1 of 3")
    line.say("3 of 3", end=True)
    assert out.getvalue() == "1 of 3\n3 of 3\n"
