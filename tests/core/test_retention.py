"""Retention (``labspool prune``'s core): which files of ended jobs go, which stay, that a dry
run changes nothing, that a job requeued meanwhile keeps its files, the store's upkeep, and
the settings."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from result.daemon import ResultDaemon
from spooler.core.errors import ConfigError, LabspoolError
from spooler.core.fsutil import exclusive_lock
from spooler.core.jobs import Jobs
from spooler.core.retention import DAEMON_LOCKS, DAY_S, Pruner
from spooler.core.settings import Settings, load_settings
from spooler.core.states import JobState
from spooler.core.store import JobStore
from spooler.core.store.housekeeping import EndedJob, Housekeeping
from spooler.core.store.shots import Ledger
from spooler.pipeline.daemon import Spooler
from tests.retentiontools import (
    LATE,
    NOW,
    OLD,
    STATES,
    build,
    every_kind,
    files_under,
    with_retention,
)


def kinds(pruner: Pruner) -> dict[str, tuple[int, int]]:
    return {s.kind: (s.removed, s.bytes) for s in pruner.run().kinds}


def test_the_files_of_jobs_ended_long_ago_go_and_every_other_stays(tree: Settings) -> None:
    settings = every_kind(tree)
    aged = build(settings)
    report = Pruner(settings, now=NOW).run()
    assert not report.errors
    counts = {s.kind: s.removed for s in report.kinds}
    assert counts == {
        "processed_addresses": 5,  # old_done's 3 (one .missing, one a free name), 2 more
        "finished_status_files": 4,  # old_done, old_error, old_rejected, old_cancelled
        "rendered_jobs": 1,  # old_done's: the others may be requeued, or are not ended
        "rejected_job_files": 2,
        "quarantine": 3,  # old_done's, one of no job, one of a job the store does not know
    }
    assert all(s.bytes > 0 for s in report.kinds)
    gone = {p for p in aged.removed if p.exists()}
    assert not gone, f"left: {sorted(map(str, gone))}"
    lost = {p for p in aged.kept if not p.exists()}
    assert not lost, f"removed: {sorted(map(str, lost))}"
    assert not (settings.folders.jobs / "old_done").exists()
    assert (settings.folders.jobs / "old_error" / "job.json").is_file(), "kept for a requeue"
    assert (settings.folders.results / "old_done.json").is_file(), "results are never pruned"


def test_no_row_of_the_store_is_lost(tree: Settings) -> None:
    settings = every_kind(tree)
    build(settings)

    def rows() -> tuple[object, ...]:
        jobs = Jobs(settings.folders)
        try:
            read = jobs.read
            return (
                [(r.job_id, r.state, r.attempt) for r in read.jobs()],
                {j: len(read.history(j)) for j in STATES},
                {j: Ledger.of_job(read, j, 1) + Ledger.of_job(read, j, 2) for j in STATES},
            )
        finally:
            jobs.close()

    before = rows()
    Pruner(settings, now=NOW).run()
    assert rows() == before


def test_a_dry_run_decides_the_same_and_changes_nothing(tree: Settings) -> None:
    settings = every_kind(tree)
    build(settings)
    before = files_under(settings.path.parent)
    database = settings.folders.database.read_bytes()
    dry = Pruner(settings, now=NOW, dry_run=True).run()
    assert dry.dry_run and dry.store is None
    assert files_under(settings.path.parent) == before
    assert settings.folders.database.read_bytes() == database
    real = Pruner(settings, now=NOW).run()
    assert [(s.kind, s.removed, s.bytes) for s in dry.kinds] == [
        (s.kind, s.removed, s.bytes) for s in real.kinds
    ]


def test_a_second_prune_finds_nothing_more(tree: Settings) -> None:
    settings = every_kind(tree)
    build(settings)
    Pruner(settings, now=NOW).run()
    assert set(kinds(Pruner(settings, now=NOW)).values()) == {(0, 0)}


def test_null_keeps_every_kind_for_ever(tree: Settings) -> None:
    settings = every_kind(tree, None)
    build(settings)
    before = files_under(settings.path.parent)
    report = Pruner(settings, now=NOW).run()
    assert all(s.removed == 0 and s.before is None for s in report.kinds)
    assert files_under(settings.path.parent) == before
    assert report.store is not None, "the store's upkeep still runs"


def test_the_age_is_counted_from_when_the_job_ended(tree: Settings) -> None:
    settings = every_kind(tree)
    build(settings)
    # 99 days after the old jobs ended, 100 days kept: nothing of theirs goes yet
    assert set(kinds(Pruner(every_kind(settings, 100), now=NOW - DAY_S)).values()) == {(0, 0)}
    # two days later, the jobs that ended lately (a day before NOW) are still within 30 days
    report = Pruner(settings, now=NOW + DAY_S).run()
    assert {s.kind: s.removed for s in report.kinds}["finished_status_files"] == 4


def test_a_job_requeued_while_the_prune_runs_keeps_what_its_new_attempt_needs(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prune read the old ERROR job as ended; before it removes anything the job is
    requeued and its new attempt files an address file: its status file (rendered again
    by the requeue) and the new attempt's address file are kept; the old attempt's go."""
    settings = every_kind(tree)
    build(settings)
    folders = settings.folders
    store = JobStore(folders.database)
    with store.snapshot() as view:
        stale = Housekeeping.ended_before(view, NOW - 30 * DAY_S)
    store.close()
    assert stale["old_error"] == EndedJob("old_error", 1, JobState.ERROR, OLD)
    jobs = Jobs(folders)
    try:
        with jobs.change() as tx:
            tx.transition("old_error", JobState.QUEUED, note="Requeued by a test")
            tx.transition("old_error", JobState.RUNNING)
            Ledger.claim(
                tx,
                "old_error__experiment_0__00000.1.json",
                job_id="old_error",
                attempt=2,
                experiment="experiment_0",
                shot_index=0,
                local_path="/shots/old_error/attempt-2/experiment_0/0.h5",
            )
    finally:
        jobs.close()
    (folders.processed / "old_error__experiment_0__00000.1.json").write_text("{}")
    monkeypatch.setattr(Pruner, "_ended", lambda self, cutoff: dict(stale))
    Pruner(settings, now=NOW).run()
    assert (folders.status / "old_error.json").is_file()
    assert (folders.processed / "old_error__experiment_0__00000.1.json").is_file()
    assert not (folders.processed / "old_error__experiment_0__00000.json").exists()
    assert not (folders.status / "old_done.json").exists(), "the others go as before"


def test_the_end_of_a_job_is_its_last_entry_into_its_final_state(tree: Settings) -> None:
    build(tree)
    store = JobStore(tree.folders.database)
    try:
        with store.snapshot() as view:
            ended = Housekeeping.ended_before(view, NOW)
            assert set(ended) == {j for j, s in STATES.items() if s in _ENDED}
            assert ended["new_done"].ended_at == LATE and ended["old_done"].ended_at == OLD
            assert set(Housekeeping.ended_before(view, NOW - 2 * DAY_S)) == {
                "old_done",
                "old_error",
                "old_rejected",
                "old_cancelled",
            }
            old, new = "old_done__experiment_0__00000.json", "requeued__experiment_0__00000.1.json"
            owners = Housekeeping.shot_owners(view, [old, new, "x"])
            assert owners == {old: ("old_done", 1), new: ("requeued", 2)}
    finally:
        store.close()


_ENDED = {JobState.DONE, JobState.ERROR, JobState.CANCELLED}


def test_the_store_is_kept_statistics_and_a_truncated_log(tree: Settings) -> None:
    build(tree)
    report = Pruner(tree, now=NOW).run()
    assert report.store is not None and not report.store.vacuumed
    assert report.store.log_truncated
    wal = tree.folders.database.with_name(tree.folders.database.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    db = sqlite3.connect(tree.folders.database)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()
    assert "sqlite_stat1" in tables


def test_vacuum_only_with_no_daemon_running(tree: Settings) -> None:
    settings = every_kind(tree)
    build(settings)
    before = files_under(settings.path.parent)
    fd = exclusive_lock(settings.folders.state / "result.lock", "result daemon")
    try:
        with pytest.raises(LabspoolError, match=r"--vacuum: another result daemon .* stop the"):
            Pruner(settings, now=NOW).run(vacuum=True)
    finally:
        os.close(fd)
    assert files_under(settings.path.parent) == before, "refused before anything was removed"
    db = sqlite3.connect(settings.folders.database, isolation_level=None)
    try:  # a megabyte of free pages, as rows deleted leave
        db.execute("CREATE TABLE scratch (data BLOB)")
        db.executemany("INSERT INTO scratch VALUES (?)", [(b"x" * 4096,)] * 256)
        db.execute("DROP TABLE scratch")
        assert db.execute("PRAGMA freelist_count").fetchone()[0] > 200
    finally:
        db.close()
    report = Pruner(settings, now=NOW).run(vacuum=True)
    assert report.store is not None and report.store.vacuumed
    assert report.store.bytes_after < report.store.bytes_before - 500_000
    db = sqlite3.connect(settings.folders.database)
    try:
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    finally:
        db.close()


def test_the_daemons_locks_are_those_the_daemons_take() -> None:
    assert {Spooler.lock, ResultDaemon.lock} <= set(DAEMON_LOCKS)
    source = Path(__file__).parents[2] / "result" / "reprocess.py"
    assert '"reprocess.lock"' in source.read_text() and "reprocess.lock" in DAEMON_LOCKS


def test_a_tree_without_a_store_is_left_as_it_is(tree: Settings) -> None:
    tree.folders.database.unlink(missing_ok=True)
    report = Pruner(tree, now=NOW).run()
    assert report.store is None and not tree.folders.database.exists()
    assert all(s.removed == 0 for s in report.kinds)


def test_the_default_retention_deletes_nothing_a_user_fetches(tree: Settings) -> None:
    retention = tree.retention  # config/labspool.yaml, as `labspool init` copies it
    assert retention.processed_addresses_days == 30
    assert retention.rejected_job_files_days == 90
    assert retention.finished_status_files_days is None
    assert retention.rendered_jobs_days is None
    assert retention.quarantine_days is None
    aged = build(tree)
    Pruner(tree, now=NOW).run()
    assert all(p.exists() for p in tree.folders.status.glob("*.json"))
    assert {p for p in aged.kept | aged.removed if p.parent == tree.folders.results} <= {
        p for p in tree.folders.results.iterdir()
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "retention:\n  processed_addresses_days: -1\n",
            "retention.processed_addresses_days: -1 is less than the minimum of 0",
        ),
        ("retention:\n  quarantine_days: -0.5\n", "retention.quarantine_days: -0.5 is less"),
        ("retention:\n  rendered_jobs_days: soon\n", "retention.rendered_jobs_days: 'soon'"),
        ("retention:\n  results_days: 30\n", "retention: Additional properties"),
    ],
)
def test_a_wrong_retention_is_refused_by_name(tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "labspool.yaml"
    config.write_text("backend: singlequdit\n" + text)
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_settings(config)


def test_a_retention_as_given(tree: Settings) -> None:
    settings = with_retention(tree, processed_addresses_days=0, finished_status_files_days=7.5)
    assert settings.retention.processed_addresses_days == 0
    assert settings.retention.finished_status_files_days == 7.5
    assert settings.retention.quarantine_days is None


def test_an_item_that_cannot_be_removed_keeps_its_reason_file_and_is_said(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = every_kind(tree)
    build(settings)
    folder = settings.folders.quarantine
    refused = folder / "old_done__experiment_0__00003.json--shot.h5"
    real_unlink = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path == refused:
            raise PermissionError(13, "Permission denied")
        real_unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    report = Pruner(settings, now=NOW).run()
    assert report.errors == [f"{refused}: Permission denied"]
    assert refused.exists()
    assert (folder / "old_done__experiment_0__00003.json.reason.json").exists(), "kept: last"
    assert not (folder / "old_done__experiment_0__00003.json").exists()
    assert not (settings.folders.status / "old_done.json").exists(), "the other kinds go on"


def test_temporary_files_of_killed_writers_go_and_a_living_ones_stays(tree: Settings) -> None:
    """A CLI, gateway or reprocess killed mid-write leaves a hidden temporary file where a
    daemon's start looks only after its own unclean stop: prune removes those whose process
    is gone (a dry run none)."""
    import subprocess
    import sys

    build(tree)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(gone.stdout)
    folders = tree.folders
    stale = [
        folders.status / f".j1.json.{dead}.7.tmp",
        folders.results / f".j1.json.{dead}.7.tmp",
        folders.quarantine / f".item.json.{dead}.tmp",
    ]
    living = folders.status / f".j2.json.{os.getpid()}.7.tmp"
    for path in [*stale, living]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{")
    assert Pruner(tree, now=NOW, dry_run=True).run().stale_temps_removed == 0
    assert all(p.exists() for p in stale)
    report = Pruner(tree, now=NOW).run()
    assert report.stale_temps_removed == 3 and not any(p.exists() for p in stale)
    assert living.exists(), "its writer is alive: it may still be writing"
