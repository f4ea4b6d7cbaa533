"""post_job's body read flat (spooler/gateway/envelope.py)."""

from __future__ import annotations

import json

import pytest

from spooler.gateway.envelope import KEYS_MAX, EnvelopeError, read_flat_object


def test_the_clients_body_is_read_with_the_job_left_a_string() -> None:
    job = json.dumps({"experiment_0": {"instructions": [["rlx", [0], [0.5]]], "shots": 3}})
    body = json.dumps({"job": job, "username": "alice", "token": "t", "n": 1.5, "x": None})
    assert read_flat_object(f"  {body} \n".encode()) == {
        "job": job,
        "username": "alice",
        "token": "t",
        "n": 1.5,
        "x": None,
    }
    assert read_flat_object(b"{ }") == {}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"job": [1]}', "must be a string"),
        (b'{"job": {"a": 1}}', "must be a string"),
        (b"[" * 100_000, "must be a JSON object"),
        (b'{"job": "a", "job": "b"}', "appears twice"),
        (b'{"job": NaN}', "NaN is not allowed"),
        (b'{"job": "a"} {}', "data after"),
        (b'{"job": "a"', "expected"),
        (b'{"job" "a"}', "':' expected"),
        (b"{job: 1}", "a key must be a string"),
        (b'{"job": "\xff"}', "not UTF-8"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "not JSON"),
        (b"", "must be a JSON object"),
        (json.dumps({f"k{i}": i for i in range(KEYS_MAX + 1)}).encode(), "more than"),
    ],
)
def test_anything_but_a_flat_object_is_refused_with_where(body: bytes, says: str) -> None:
    with pytest.raises(EnvelopeError, match=says):
        read_flat_object(body)
