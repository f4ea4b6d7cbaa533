from __future__ import annotations

from datetime import datetime

import pytest

from spooler.core.timestamps import iso_time, parse_time


def test_relative_times() -> None:
    assert parse_time("+90m", now=1000.0) == 1000.0 + 5400
    assert parse_time("+2h", now=0.0) == 7200.0
    assert parse_time("+30s", now=5.0) == 35.0


def test_a_time_of_day_is_the_next_one() -> None:
    now = datetime(2026, 11, 22, 17, 0).timestamp()
    assert parse_time("18:00", now=now) == datetime(2026, 11, 22, 18, 0).timestamp()
    assert parse_time("16:00", now=now) == datetime(2026, 11, 23, 16, 0).timestamp()


def test_iso_round_trip() -> None:
    stamp = parse_time("2026-11-22T18:00:00+00:00", now=0.0)
    assert iso_time(stamp) == "2026-11-22T18:00:00.000+00:00"


@pytest.mark.parametrize("text", ["tomorrow", "+5x", "+m", "25:99", ""])
def test_nonsense_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time"):
        parse_time(text, now=0.0)
