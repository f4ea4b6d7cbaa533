from __future__ import annotations

import pytest

from spooler.core.errors import JobRejected
from spooler.core.jobid import is_store_id, is_valid_job_id, new_job_id, parse_job_file_name


@pytest.mark.parametrize(
    ("name", "job_id", "user"),
    [
        ("20240301_101500_1a2b3.json", "20240301_101500_1a2b3", None),
        (
            "job-20240301_101500-singlequdit-alice-1a2b3.json",
            "20240301_101500-singlequdit-alice-1a2b3",
            None,
        ),
        ("file_20240301_101500_1a2b3-alice.json", "20240301_101500_1a2b3", "alice"),
        ("abc.json", "abc", None),
    ],
)
def test_ecosystem_file_names(name: str, job_id: str, user: str | None) -> None:
    parsed = parse_job_file_name(name)
    assert (parsed.job_id, parsed.user) == (job_id, user)


@pytest.mark.parametrize(
    "name",
    [
        "..json",
        "a..b.json",
        "a.b.json",
        "-a.json",
        "job.json\n",
        "a b.json",
        "x" * 101 + ".json",
        "job.txt",
        "ä.json",
        ".json",
    ],
)
def test_bad_file_names(name: str) -> None:
    with pytest.raises(JobRejected, match="gives no valid job id"):
        parse_job_file_name(name)


def test_ids() -> None:
    assert is_valid_job_id(new_job_id())
    assert not is_valid_job_id("../etc/passwd")
    assert not is_valid_job_id("a/b")
    assert not is_valid_job_id("abc\n")
    assert is_store_id("rejected.12") and not is_valid_job_id("rejected.12")
