from __future__ import annotations

import pytest

from spooler.core.errors import JobRejected
from spooler.core.strictjson import loads_strict


def test_plain_json() -> None:
    assert loads_strict(b'{"a": [1, 2.5, "x", null, true]}', max_depth=8) == {
        "a": [1, 2.5, "x", None, True]
    }


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"a": NaN}', "NaN is not allowed"),
        (b'{"a": Infinity}', "Infinity is not allowed"),
        (b'{"a": -Infinity}', "-Infinity is not allowed"),
        (b'{"a": 1e999}', "'1e999' is out of range"),
        (b'{"a": 1, "a": 2}', "the key 'a' appears twice"),
        (b'{"a": ' + b"9" * 40 + b"}", "more than 30 digits"),
        (b"[" * 50 + b"]" * 50, "nests deeper than 16"),
        (b"[" * 100_000 + b"]" * 100_000, "nests deeper than 16"),
        (b'{"a": 1', "not valid JSON"),
        (b"", "empty"),
        ('{"a": 1}'.encode("utf-16"), "UTF-16"),
        (b"\xef\xbb\xbf{}", "byte-order mark"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'{"a": "line\nbreak"}', "not valid JSON"),
    ],
)
def test_refuses(data: bytes, fragment: str) -> None:
    with pytest.raises(JobRejected) as caught:
        loads_strict(data, max_depth=16)
    assert fragment in str(caught.value)


def test_json_error_position() -> None:
    with pytest.raises(JobRejected, match="line 2 column 1"):
        loads_strict(b'{"a": 1,\n}', max_depth=8)
