"""queue.policy fair: users take turns; fifo keeps the order of arrival."""

from __future__ import annotations

import yaml

from spooler.core.jobs import Jobs
from spooler.core.settings import Settings, load_settings
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job


def with_policy(settings: Settings, policy: str) -> Settings:
    raw = yaml.safe_load(settings.path.read_text(encoding="utf-8"))
    raw["queue"] = {"policy": policy}
    settings.path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_settings(settings.path)


def admit(settings: Settings, names: list[str]) -> list[str]:
    """Drop the job files in this order, one spooler pass each; the queue's order after."""
    for name in names:
        drop(settings, name, good_job())
        spooler = Spooler(settings)
        try:
            spooler.run_once()
        finally:
            spooler.close()
    jobs = Jobs(settings.folders)
    try:
        return [r.job_id for r in jobs.read.queue()]
    finally:
        jobs.close()


ARRIVALS = [f"file_a{n}-alice.json" for n in range(4)] + [
    "file_b0-bob.json",
    "file_b1-bob.json",
    "file_c0-carol.json",
    "anon0.json",
]


def test_fair_share_interleaves_the_users_by_their_waiting_jobs(tree: Settings) -> None:
    order = admit(with_policy(tree, "fair"), ARRIVALS)
    assert order == ["a0", "b0", "c0", "anon0", "a1", "b1", "a2", "a3"]
    jobs = Jobs(tree.folders)
    try:
        positions = jobs.read.queue_positions(["c0", "a3"])
        assert positions == {"c0": 3, "a3": 8}, "the positions follow the policy"
        assert jobs.status_files.read("c0")["queue_position"] == 3
    finally:
        jobs.close()


def test_fifo_keeps_the_order_of_arrival(tree: Settings) -> None:
    order = admit(with_policy(tree, "fifo"), ARRIVALS)
    assert order == ["a0", "a1", "a2", "a3", "b0", "b1", "c0", "anon0"]
