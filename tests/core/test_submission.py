"""Submitting a job: atomic, never replacing another, named so the spooler reads its user."""

from __future__ import annotations

import pytest

from spooler.core.errors import LabspoolError
from spooler.core.jobid import parse_job_file_name
from spooler.core.settings import Settings
from spooler.core.submission import JobIdTaken, submit_job


def test_a_job_with_its_user_is_named_so_the_spooler_reads_both(tree: Settings) -> None:
    job_id = submit_job(tree.folders, b"{}", user="alice@lab")
    (path,) = tree.folders.dump.iterdir()
    parsed = parse_job_file_name(path.name)
    assert (parsed.job_id, parsed.user) == (job_id, "alice@lab")
    assert path.read_bytes() == b"{}"
    assert not any(tree.folders.staging.iterdir())


def test_an_id_in_use_is_refused_and_the_first_file_kept(tree: Settings) -> None:
    submit_job(tree.folders, b"first", job_id="same")
    with pytest.raises(JobIdTaken):
        submit_job(tree.folders, b"second", job_id="same")
    assert (tree.folders.dump / "same.json").read_bytes() == b"first"
    assert not any(tree.folders.staging.iterdir())
    with pytest.raises(LabspoolError, match="not a valid job id"):
        submit_job(tree.folders, b"{}", job_id="../x")


def test_the_job_file_never_has_a_second_link(
    tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spooler refuses a job file with two links: a link into the dump folder, even for
    a moment, got a job refused in CI (\"the job file has 2 hard links\")."""

    def no_link(*args: object, **kwargs: object) -> None:
        raise AssertionError("submit_job made a hard link")

    monkeypatch.setattr("os.link", no_link)
    job_id = submit_job(tree.folders, b"{}", user="bob")
    assert (tree.folders.dump / f"file_{job_id}-bob.json").stat().st_nlink == 1
