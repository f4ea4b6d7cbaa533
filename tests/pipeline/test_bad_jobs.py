"""The corpus of hostile and broken job files: each ends ERROR with a specific message."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from spooler.core.jobs import Jobs
from spooler.core.names import escaped
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job

CORPUS = Path(__file__).parents[1] / "bad_jobs"


def _expected() -> dict[str, str]:
    table = {}
    for line in (CORPUS / "expected.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, fragment = line.split("\t", 1)
            table[name] = fragment
    return table


EXPECTED = _expected()


def _status(settings: Settings, job_id: str) -> dict[str, object]:
    jobs = Jobs(settings.folders)
    try:
        return jobs.status_files.read(job_id)
    finally:
        jobs.close()


def test_corpus_is_large_enough() -> None:
    assert len(EXPECTED) >= 40
    assert sorted(EXPECTED) == sorted(p.name for p in CORPUS.glob("*.json"))


def test_every_bad_job_ends_error_with_its_message_and_the_daemon_goes_on(tree: Settings) -> None:
    for name in EXPECTED:
        shutil.copyfile(CORPUS / name, tree.folders.staging / name)
        os.rename(tree.folders.staging / name, tree.folders.dump / name)
    drop(tree, "good_after_the_bad.json", good_job())
    spooler = Spooler(tree)
    try:
        report = spooler.run_once()
    finally:
        spooler.close()
    assert report.admitted == len(EXPECTED) + 1
    failures = []
    for name, fragment in EXPECTED.items():
        status = _status(tree, name.removesuffix(".json"))
        if status["status"] != "ERROR" or fragment not in str(status["error_message"]):
            failures.append(f"{name}: {status['status']} {status['error_message']!r}")
        assert (tree.folders.rejected / name).exists(), "a rejected job file is kept"
    assert not failures, "\n".join(failures)
    assert _status(tree, "good_after_the_bad")["status"] == "QUEUED"
    assert not any(tree.folders.dump.iterdir())


def _run_once(settings: Settings) -> None:
    spooler = Spooler(settings)
    try:
        spooler.run_once()
    finally:
        spooler.close()


def test_symlink_is_refused_and_its_target_untouched(tree: Settings, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"experiment_0": {}}')
    os.symlink(secret, tree.folders.dump / "link.json")
    _run_once(tree)
    status = _status(tree, "link")
    assert status["status"] == "ERROR"
    assert "symbolic link" in str(status["error_message"])
    assert secret.read_text() == '{"experiment_0": {}}'
    assert (tree.folders.rejected / "link.json").is_symlink()


def test_file_over_the_size_cap(tree: Settings) -> None:
    padding = " " * (tree.limits.job_file_max_bytes + 1)
    drop(
        tree,
        "big.json",
        '{"experiment_0": {"instructions": [], "num_wires": 1, "shots": 1}}' + padding,
    )
    _run_once(tree)
    status = _status(tree, "big")
    assert status["status"] == "ERROR"
    assert f"more than the limit of {tree.limits.job_file_max_bytes} bytes" in str(
        status["error_message"]
    )


def test_fifo_is_refused_without_blocking(tree: Settings) -> None:
    os.mkfifo(tree.folders.dump / "pipe.json")
    _run_once(tree)
    status = _status(tree, "pipe")
    assert status["status"] == "ERROR"
    assert "not a regular file" in str(status["error_message"])


def test_hard_link_is_refused(tree: Settings, tmp_path: Path) -> None:
    original = tmp_path / "original.json"
    original.write_text("{}")
    os.link(original, tree.folders.dump / "linked.json")
    _run_once(tree)
    assert "2 hard links" in str(_status(tree, "linked")["error_message"])


@pytest.mark.parametrize(
    "name", ["a..b.json", "x y.json", "c...json", "job.txt", "ü.json", "a\nb.json"]
)
def test_names_without_a_valid_id_get_a_labspool_id(tree: Settings, name: str) -> None:
    drop(tree, name, good_job())
    _run_once(tree)
    jobs = Jobs(tree.folders)
    try:
        (record,) = jobs.read.jobs()
    finally:
        jobs.close()
    assert record.job_id.startswith("rejected.")
    assert record.state is JobState.ERROR
    assert "gives no valid job id" in str(record.error_message)
    assert record.source_name == escaped(name)  # printable: a\nb.json
    assert (tree.folders.rejected / f"{record.job_id}.json").exists()


def test_an_id_already_used_leaves_the_earlier_job_untouched(tree: Settings) -> None:
    drop(tree, "same.json", good_job())
    _run_once(tree)
    earlier = (tree.folders.status / "same.json").read_bytes()
    earlier_job = (tree.folders.jobs / "same" / "job.json").read_bytes()
    drop(tree, "job-same.json", good_job(shots=7))
    _run_once(tree)
    assert (tree.folders.status / "same.json").read_bytes() == earlier
    assert (tree.folders.jobs / "same" / "job.json").read_bytes() == earlier_job
    jobs = Jobs(tree.folders)
    try:
        refused = [r for r in jobs.read.jobs() if r.job_id != "same"]
    finally:
        jobs.close()
    assert len(refused) == 1
    assert refused[0].state is JobState.ERROR
    assert "same is already used by an earlier job" in str(refused[0].error_message)


def test_ignored_names_and_folders_stay_in_the_dump_folder(tree: Settings) -> None:
    for name in (".hidden.json", "writing.json.tmp", "writing.json.part", "backup.json~"):
        (tree.folders.dump / name).write_text("{}")
    (tree.folders.dump / "subfolder").mkdir()
    _run_once(tree)
    assert sorted(p.name for p in tree.folders.dump.iterdir()) == sorted(
        [".hidden.json", "writing.json.tmp", "writing.json.part", "backup.json~", "subfolder"]
    )
    assert not any(tree.folders.status.glob("*.json"))
