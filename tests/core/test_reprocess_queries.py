"""The store's queries behind ``labspool-result reprocess --all``: the jobs with archived
shots a window at a time, and one job's shots, each looked up in an index (never a scan of
the ledger, never sorted whole), with or without the statistics ``labspool prune`` gathers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spooler.core.states import JobState
from spooler.core.store import JobStore
from spooler.core.store.reprocessing import Reprocessing
from spooler.core.store.shots import Ledger
from tests.core.test_store import plans

JOBS = 250


def kind(n: int) -> str:
    """What job *n* has: no shot (refused), shots received only, or archived ones."""
    return ("none", "received")[n % 5] if n % 5 < 2 else "archived"


@pytest.fixture(params=[False, True], ids=["fresh", "analysed"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[JobStore]:
    """Jobs j0 ... j249 in that order; job n's shots (if any) archived at time n."""
    store = JobStore(tmp_path / "db.sqlite3")
    with store.transaction() as tx:
        for n in range(JOBS):
            job = f"j{n}"
            tx.add_job(job_id=job, backend="singlequdit", source_name=f"{job}.json", claim_name="x")
            tx.transition(job, JobState.QUEUED)
            if kind(n) == "none":
                continue
            for shot in (2, 0, 1):
                address = f"{job}-{shot}"
                Ledger.claim(
                    tx, address, job_id=job, attempt=1, experiment="e", shot_index=shot,
                    local_path=f"/shots/{address}.h5",
                )  # fmt: skip
                if kind(n) == "archived" and shot != 1:
                    Ledger.archived(
                        tx, address, sds_path=f"/sds/{address}.h5", size=1, sha256="0" * 64,
                        frame=b"frame", memory="m", error=None, routines="v",
                    )  # fmt: skip
                    tx.execute("UPDATE shots SET archived_at = ? WHERE address = ?", (n, address))
    if request.param:
        store._db.execute("ANALYZE")
    yield store
    store.close()


def windows(store: JobStore, size: int, since: float | None) -> list[list[tuple[int, str]]]:
    found, after = [], 0
    while True:
        window = Reprocessing.jobs_after(store.read, after, size, since)
        found.append(window)
        if len(window) < size:
            return found
        after = window[-1][0]


@pytest.mark.parametrize("since", [None, 100.0])
def test_the_jobs_with_archived_shots_come_a_window_at_a_time_each_looked_up(
    store: JobStore, since: float | None
) -> None:
    wanted = [
        f"j{n}" for n in range(JOBS) if kind(n) == "archived" and (since is None or n >= since)
    ]
    pages = windows(store, 40, since)
    assert [job for page in pages for _, job in page] == wanted
    assert all(len(page) == 40 for page in pages[:-1]) and len(pages[-1]) < 40
    assert Reprocessing.jobs_count(store.read, since) == len(wanted)
    for plan in plans(store, lambda: Reprocessing.jobs_after(store.read, 40, 40, since)):
        # a range of the jobs in their order; each job's shots: one look-up in an index
        assert not plan.startswith("SCAN") and "TEMP B-TREE" not in plan, plan
        assert "shots" not in plan or "COVERING INDEX shots_by_job_archived_at" in plan, plan
    # the count looks at every job once (it must), each in the index, nothing sorted
    for plan in plans(store, lambda: Reprocessing.jobs_count(store.read, since)):
        assert "SCAN shots" not in plan and "TEMP B-TREE" not in plan, plan
        assert "shots" not in plan or "COVERING INDEX shots_by_job_archived_at" in plan, plan


def test_a_jobs_archived_shots_are_read_in_order_from_an_index_without_frames(
    store: JobStore,
) -> None:
    rows = Ledger.to_reanalyse(store.read, "j7", 1)
    assert [r.address for r in rows] == ["j7-0", "j7-2"]  # archived ones, by shot
    assert all(r.frame is None and r.memory is None and r.sds_path for r in rows)
    assert Ledger.to_reanalyse(store.read, "j6", 1) == []  # received only
    for plan in plans(store, lambda: Ledger.to_reanalyse(store.read, "j7", 1)):
        assert not plan.startswith("SCAN") and "TEMP B-TREE" not in plan, plan
