from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from result.archive import StoreUnavailable, checksum, place


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An analysed shot's work copy beside its place on the store."""
    path = tmp_path / "sds" / "job" / "experiment_0" / ".shot.h5.1234abcd.work"
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(300_000))
    return path


def test_a_copy_that_verifies_takes_its_place(work: Path) -> None:
    target = work.with_name("shot.h5")
    content, expected = work.read_bytes(), checksum(work)
    assert expected == (300_000, hashlib.sha256(content).hexdigest())
    assert place(work, target, expected)
    assert target.read_bytes() == content
    assert [p.name for p in target.parent.iterdir()] == ["shot.h5"], "no work copy left"


def test_an_unrecorded_copy_at_the_place_is_replaced(work: Path) -> None:
    target = work.with_name("shot.h5")
    target.write_bytes(b"a copy archived before a crash, never recorded")
    expected = checksum(work)
    assert place(work, target, expected)
    assert checksum(target) == expected and not work.exists()


def test_a_copy_that_does_not_verify_is_removed_and_the_place_kept(work: Path) -> None:
    target = work.with_name("shot.h5")
    target.write_bytes(b"archived")
    size, digest = checksum(work)
    with work.open("r+b") as f:
        f.write(b"\0")  # changed after its task said what it was
    assert not place(work, target, (size, digest))
    assert not work.exists() and target.read_bytes() == b"archived"
    assert not place(work, target, (size, digest)), "gone: analysed again"


def test_a_store_that_fails_is_unavailable_and_the_copy_kept(work: Path) -> None:
    target = work.parent / "not-a-folder" / "shot.h5"
    target.parent.write_text("a file where the store has a folder")
    with pytest.raises(StoreUnavailable, match="cannot rename into the store"):
        place(work, target, checksum(work))
    assert work.exists()


def test_a_lock_server_that_does_not_answer_is_transient_not_the_shots_fault() -> None:
    from zprocess.utils import TimeoutError as ZlockTimeout

    from result.archive import is_transient

    assert is_transient(ZlockTimeout("Could not connect to server: timed out"))
    assert not is_transient(OSError("Unable to open file (truncated file)"))
    assert not is_transient(TimeoutError("a routine's own time-out"))  # not retried forever
