from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from result.archive import StoreUnavailable, archive, checksum


@pytest.fixture
def shot(tmp_path: Path) -> Path:
    path = tmp_path / "local" / "shot.h5"
    path.parent.mkdir()
    path.write_bytes(os.urandom(300_000))
    return path


def test_archive_copies_verifies_and_leaves_the_local_copy(shot: Path, tmp_path: Path) -> None:
    target = tmp_path / "sds" / "job" / "experiment_0" / "shot.h5"
    done = archive(shot, target)
    assert target.read_bytes() == shot.read_bytes()
    assert (done.size, done.sha256) == checksum(shot)
    assert shot.exists()
    assert [p.name for p in target.parent.iterdir()] == ["shot.h5"], "no temporary file left"


def test_archive_again_after_a_crash_after_the_rename_is_a_no_op(
    shot: Path, tmp_path: Path
) -> None:
    target = tmp_path / "sds" / "shot.h5"
    first = archive(shot, target)
    mtime = target.stat().st_mtime_ns
    assert archive(shot, target) == first
    assert target.stat().st_mtime_ns == mtime


def test_a_stale_temporary_copy_from_a_crash_is_replaced(shot: Path, tmp_path: Path) -> None:
    target = tmp_path / "sds" / "shot.h5"
    target.parent.mkdir()

    (target.parent / f".{target.name}.12345.6789.tmp").write_bytes(b"half a shot")
    archive(shot, target)
    assert target.read_bytes() == shot.read_bytes()


def test_other_content_at_the_target_is_never_replaced(shot: Path, tmp_path: Path) -> None:
    target = tmp_path / "sds" / "shot.h5"
    target.parent.mkdir()
    target.write_bytes(b"someone else's shot")
    with pytest.raises(StoreUnavailable, match="other content"):
        archive(shot, target)
    assert target.read_bytes() == b"someone else's shot"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_store_is_unavailable(shot: Path, tmp_path: Path) -> None:
    store = tmp_path / "sds"
    store.mkdir()
    store.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(StoreUnavailable, match="cannot write to the store"):
            archive(shot, store / "x" / "shot.h5")
    finally:
        store.chmod(stat.S_IRWXU)
    assert shot.exists()


def test_a_store_that_is_a_file_is_unavailable(shot: Path, tmp_path: Path) -> None:
    # Stands for a store that is not mounted or not writable (works as root too).
    store = tmp_path / "sds"
    store.write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="cannot write to the store"):
        archive(shot, store / "job" / "shot.h5")
    assert shot.exists()


def test_stale_temporaries_of_a_killed_copy_are_cleared(shot: Path, tmp_path: Path) -> None:
    target = tmp_path / "sds" / "shot.h5"
    target.parent.mkdir()
    stale = target.parent / ".shot.h5.99999.1.tmp"
    stale.write_bytes(b"cut short")
    archive(shot, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["shot.h5"]


def test_a_lock_server_that_does_not_answer_is_transient_not_the_shots_fault() -> None:
    from zprocess.utils import TimeoutError as ZlockTimeout

    from result.archive import is_transient

    assert is_transient(ZlockTimeout("Could not connect to server: timed out"))
    assert not is_transient(OSError("Unable to open file (truncated file)"))
    assert not is_transient(TimeoutError("a routine's own time-out"))  # not retried forever
