"""10,000 jobs dropped at once: all taken, each exactly once, oldest first, memory bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _burst(root: Path, count: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.pipeline.burst_worker", str(root), str(count)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_ten_thousand_jobs_at_once(tmp_path: Path) -> None:
    small = _burst(tmp_path / "small", 2_000)
    big = _burst(tmp_path / "big", 10_000)
    assert big["admitted"] == big["records"] == big["distinct_ids"] == big["queued"] == 10_000
    assert big["transitions"] == 2 * 10_000  # INITIALIZING and QUEUED, each exactly once
    assert big["dump_left"] == 0 and big["claimed_left"] == 0
    assert big["job_folders"] == 10_000 and big["status_files"] == 10_000
    assert big["oldest_first"], "jobs were not admitted in order of arrival"
    assert big["name_order_differs"], "the test must not pass by sorting on names"
    # Memory: what the spooler holds per waiting job is its index entry (a name and a time,
    # a few hundred bytes), not the job. 8,000 more jobs in the backlog may cost at most
    # 1 KiB each; holding every parsed job would cost several KiB each.
    growth_kib = big["peak_rss_growth_kib"] - small["peak_rss_growth_kib"]
    assert growth_kib < 8_000, (small, big)
