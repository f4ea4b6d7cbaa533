"""Child process of tests/pipeline/test_burst.py: drop N jobs at once, admit them, report.

Run as ``python -m tests.pipeline.burst_worker ROOT N``; prints one JSON line.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys
from pathlib import Path

from spooler.core.jobs import Jobs
from spooler.pipeline.daemon import Spooler
from tests.conftest import good_job, init_tree


def main(root: Path, count: int) -> dict[str, object]:
    settings = init_tree(root)
    arrival: dict[str, int] = {}
    # Names run against arrival order, so that name order and arrival order disagree.
    for i in range(count):
        name = f"burst{count - i:06d}.json"
        staged = settings.folders.staging / name
        staged.write_text(json.dumps(good_job(shots=1 + i % 7)))
        os.rename(staged, settings.folders.dump / name)
        arrival[name.removesuffix(".json")] = (settings.folders.dump / name).stat().st_ctime_ns
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    spooler = Spooler(settings)
    try:
        report = spooler.run_once()
    finally:
        spooler.close()
    after_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    jobs = Jobs(settings.folders)
    try:
        records = jobs.read.jobs()  # in admission order
        histories = sum(len(jobs.read.history(r.job_id)) for r in records)
    finally:
        jobs.close()
    order = [arrival[r.job_id] for r in records]
    return {
        "admitted": report.admitted,
        "records": len(records),
        "distinct_ids": len({r.job_id for r in records}),
        "queued": sum(r.state.value == "QUEUED" for r in records),
        "transitions": histories,
        "oldest_first": all(a <= b for a, b in itertools.pairwise(order)),
        "name_order_differs": [r.job_id for r in records] != sorted(r.job_id for r in records),
        "dump_left": len(os.listdir(settings.folders.dump)),
        "claimed_left": len(os.listdir(settings.folders.claimed)),
        "job_folders": len(os.listdir(settings.folders.jobs)),
        "status_files": sum(1 for p in settings.folders.status.glob("*.json")),
        "peak_rss_growth_kib": max(0, after_kib - before_kib),
        "peak_rss_kib": after_kib,
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]))))
