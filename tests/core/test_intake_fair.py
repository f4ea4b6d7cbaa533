"""Intake fair between users (issue 19): files are taken round-robin across submitters, each
one's oldest first, in batches bounded in bytes, so that one user's burst of big jobs never
holds another user's small job for more than a turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spooler.core.backends import get_backend
from spooler.core.intake import ANONYMOUS, Candidate, DumpFolder, submitter_of
from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.pipeline.daemon import PASS_MAX_BYTES, Spooler
from tests.conftest import drop, good_job

BIG = 50_000  # bytes of a big job file


def _folder(tmp_path: Path) -> DumpFolder:
    dump, claimed = tmp_path / "dump", tmp_path / "claimed"
    dump.mkdir()
    claimed.mkdir()
    folder = DumpFolder(dump, claimed)
    folder.share_by(submitter_of)
    return folder


def _arrive(folder: DumpFolder, *names: str, size: int = 10) -> None:
    """Files written in this order; their names sort in the same order, so that arrival
    order is this order even where two files share an inode change time (ties go by name)."""
    assert list(names) == sorted(names)
    for name in names:
        (folder.folder / name).write_bytes(b" " * size)


def _names(taken: list[Candidate]) -> list[str]:
    return [c.name for c in taken]


def test_the_submitter_is_the_user_in_the_file_name() -> None:
    assert submitter_of("file_20240301_101500_1a2b3-alice.json") == "alice"
    assert submitter_of("file_x-bob@lab.org.json") == "bob@lab.org"
    for name in ("x.json", "job-x.json", "not a job", ".hidden"):
        assert submitter_of(name) == ANONYMOUS


def test_a_burst_of_big_jobs_does_not_hold_another_users_small_job(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _arrive(folder, *(f"file_a{i}-alice.json" for i in range(5)), size=BIG)
    _arrive(folder, "file_b0-bob.json")
    assert folder.rescan() == 6
    taken = _names(folder.take(256))
    assert taken[:2] == ["file_a0-alice.json", "file_b0-bob.json"]  # the first round
    assert taken[2:] == [f"file_a{i}-alice.json" for i in range(1, 5)]  # alice's oldest first


def test_the_rotation_goes_on_from_one_take_to_the_next(tmp_path: Path) -> None:
    """Taken one at a time (a pass of one big file each), bob is next after alice's first,
    although alice's others are older than his."""
    folder = _folder(tmp_path)
    _arrive(folder, *(f"file_a{i}-alice.json" for i in range(5)), size=BIG)
    _arrive(folder, "file_b0-bob.json", "file_b1-bob.json")
    folder.rescan()
    order = [_names(folder.take(1))[0] for _ in range(7)]
    assert order == [
        "file_a0-alice.json",
        "file_b0-bob.json",
        "file_a1-alice.json",
        "file_b1-bob.json",
        "file_a2-alice.json",
        "file_a3-alice.json",
        "file_a4-alice.json",
    ]
    assert folder.take(1) == [] and len(folder) == 0


def test_round_robin_across_three_users_and_the_anonymous_ones(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _arrive(folder, "1.json", "2.json", "3.json")  # no user: one anonymous submitter
    _arrive(folder, "file_a0-alice.json", "file_a1-alice.json", "file_a2-alice.json")
    _arrive(folder, "file_b0-bob.json", "file_b1-bob.json")
    _arrive(folder, "file_c0-carol.json")
    folder.rescan()
    assert _names(folder.take(100)) == [
        *("1.json", "file_a0-alice.json", "file_b0-bob.json", "file_c0-carol.json"),
        *("2.json", "file_a1-alice.json", "file_b1-bob.json"),
        *("3.json", "file_a2-alice.json"),
    ]


def test_a_user_whose_file_comes_later_has_the_next_turn(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _arrive(folder, *(f"file_a{i}-alice.json" for i in range(3)), size=BIG)
    folder.rescan()
    assert _names(folder.take(1)) == ["file_a0-alice.json"]
    _arrive(folder, "file_b0-bob.json")
    folder.hint("file_b0-bob.json")
    assert folder.merge_hints()
    assert _names(folder.take(2)) == ["file_b0-bob.json", "file_a1-alice.json"]


def test_one_user_alone_is_taken_oldest_first_as_before(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    names = [f"file_{i:03d}-alice.json" for i in range(40)]
    _arrive(folder, *names)
    folder.rescan()
    assert _names(folder.take(15)) + _names(folder.take(100)) == names


def test_a_batch_is_bounded_in_bytes_but_takes_at_least_one_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _arrive(folder, "file_a0-alice.json", "file_a1-alice.json", size=3 * BIG)
    _arrive(folder, "file_b0-bob.json", "file_b1-bob.json", "file_b2-bob.json", size=BIG)
    folder.rescan()
    passes = [_names(folder.take(100, max_bytes=2 * BIG)) for _ in range(5)]
    assert passes == [
        ["file_a0-alice.json"],  # alone, bigger than the bound
        ["file_b0-bob.json"],  # alice's turn next, and her file does not fit
        ["file_a1-alice.json"],
        ["file_b1-bob.json", "file_b2-bob.json"],
        [],
    ]


def test_without_share_by_every_file_is_one_submitters(tmp_path: Path) -> None:
    """The result daemon's address folder: oldest first, whatever the names."""
    dump, claimed = tmp_path / "dump", tmp_path / "claimed"
    dump.mkdir()
    claimed.mkdir()
    folder = DumpFolder(dump, claimed)
    names = ["file_a0-alice.json", "file_a1-alice.json", "file_b0-bob.json"]
    for name in names:
        (dump / name).write_text("{}")
    folder.rescan()
    assert _names(folder.take(10)) == names


def _at_the_limit(settings: Settings) -> str:
    backend = get_backend(settings.backend)
    instruction = ["rlx", [0], [1.2345678901234567]]
    return json.dumps(
        {
            f"experiment_{i}": {
                "instructions": [instruction] * backend.max_instructions,
                "num_wires": 1,
                "shots": 1,
            }
            for i in range(backend.max_experiments)
        }
    )


def _state(settings: Settings, job_id: str) -> JobState | None:
    jobs = Jobs(settings.folders)
    try:
        record = jobs.read.get(job_id)
        return None if record is None else record.state
    finally:
        jobs.close()


@pytest.mark.parametrize("bob_first_by_name", [False, True])
def test_the_spooler_queues_the_small_job_after_at_most_one_big_one(
    tree: Settings, bob_first_by_name: bool
) -> None:
    big = _at_the_limit(tree)
    assert PASS_MAX_BYTES // 2 < len(big) < PASS_MAX_BYTES  # one of them fills a pass
    for i in range(5):
        drop(tree, f"file_a{i}-alice.json", big)
    bob = "file_0b-bob.json" if bob_first_by_name else "file_b0-bob.json"
    drop(tree, bob, good_job())
    spooler = Spooler(tree)
    try:
        spooler.step()
        spooler.step()
        bob_state = _state(tree, bob.removeprefix("file_").split("-")[0])
        alice = [_state(tree, f"a{i}") for i in range(5)]
    finally:
        spooler.close()
    assert bob_state is JobState.QUEUED
    assert alice[0] is JobState.QUEUED and alice.count(None) >= 3
