from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

from spooler.core.intake import Candidate, DumpFolder, DumpWatcher


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    dump, claimed = tmp_path / "dump", tmp_path / "claimed"
    dump.mkdir()
    claimed.mkdir()
    return dump, claimed


def _arrive(dump: Path, name: str, ctime_offset_ns: int) -> None:
    path = dump / name
    path.write_text("{}")
    # Arrival is the inode change time; set it apart explicitly (utime changes ctime to now,
    # so arrival order is the order of these calls).
    os.utime(path, ns=(ctime_offset_ns, ctime_offset_ns))


def test_oldest_first_by_arrival_not_by_name(tmp_path: Path) -> None:
    dump, claimed = _folders(tmp_path)
    for i, name in enumerate(["c.json", "a.json", "b.json"]):
        _arrive(dump, name, i)
        time.sleep(0.01)  # ctime has a coarse clock; arrivals must be distinguishable
    folder = DumpFolder(dump, claimed)
    assert folder.rescan() == 3
    assert [c.name for c in folder.take(10)] == ["c.json", "a.json", "b.json"]


def test_same_arrival_time_falls_back_to_the_name() -> None:
    assert sorted([Candidate(5, "b"), Candidate(5, "a"), Candidate(4, "z")]) == [
        Candidate(4, "z"),
        Candidate(5, "a"),
        Candidate(5, "b"),
    ]


def test_hints_add_only_new_visible_files(tmp_path: Path) -> None:
    dump, claimed = _folders(tmp_path)
    folder = DumpFolder(dump, claimed)
    folder.rescan()
    (dump / "new.json").write_text("{}")
    (dump / ".hidden.json").write_text("{}")
    for name in ("new.json", "new.json", ".hidden.json", "gone.json"):
        folder.hint(name)
    assert folder.wake.is_set()
    assert folder.merge_hints()
    assert [c.name for c in folder.take(10)] == ["new.json"]


def test_too_many_hints_ask_for_a_rescan(tmp_path: Path) -> None:
    dump, claimed = _folders(tmp_path)
    folder = DumpFolder(dump, claimed)
    for i in range(5000):
        folder.hint(f"{i}.json")
    assert folder.merge_hints() is False


def _claimer(dump: str, claimed: str, names: list[str], out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    folder = DumpFolder(Path(dump), Path(claimed))
    won = [c.name for c in (Candidate(0, n) for n in names) if folder.claim(c) is not None]
    out.put(won)


def test_two_claimants_never_take_the_same_file(tmp_path: Path) -> None:
    dump, claimed = _folders(tmp_path)
    names = [f"{i:04d}.json" for i in range(500)]
    for name in names:
        (dump / name).write_text("{}")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(str(dump), str(claimed), names, out)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    first, second = map(set, results)
    assert not first & second
    assert first | second == set(names)


def test_the_watcher_wakes_the_loop_on_a_rename_into_the_folder(tmp_path: Path) -> None:
    dump, claimed = _folders(tmp_path)
    folder = DumpFolder(dump, claimed)
    watcher = DumpWatcher(folder, polling=False, polling_interval_s=1.0)
    watcher.start()
    try:
        assert watcher.alive()
        staged = tmp_path / "job.json"
        staged.write_text("{}")
        os.rename(staged, dump / "job.json")
        assert folder.wake.wait(10)
        assert folder.merge_hints()
        assert [c.name for c in folder.take(1)] == ["job.json"]
    finally:
        watcher.stop()
    assert not watcher.alive()


def test_a_failing_hint_does_not_kill_the_observer(tmp_path: Path) -> None:
    dump, claimed = _folders(tmp_path)
    folder = DumpFolder(dump, claimed)
    seen = threading.Event()
    calls = []

    def flaky(name: str) -> None:
        calls.append(name)
        if len(calls) == 1:
            raise RuntimeError("boom")
        seen.set()

    folder.hint = flaky  # type: ignore[method-assign]
    watcher = DumpWatcher(folder, polling=False, polling_interval_s=1.0)
    watcher.start()
    try:
        (dump / "one.json").write_text("{}")
        (dump / "two.json").write_text("{}")
        assert seen.wait(10)
        assert watcher.alive()
    finally:
        watcher.stop()
