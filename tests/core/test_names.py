"""File names of any bytes: through the real intake, job store, status files and logs."""

from __future__ import annotations

import json
import logging
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spooler.core.fsutil import is_ignored_name
from spooler.core.jobs import Jobs
from spooler.core.names import escaped, is_plain, plain_name
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobRecord
from spooler.pipeline.daemon import Spooler
from tests.conftest import good_job, init_tree

NAME_MAX = 255


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        (os.fsdecode(b"job\xff\xfe.json"), "job\\xff\\xfe.json"),
        ("a\nb.json", "a\\nb.json"),
        ("bell\x07.json", "bell\\x07.json"),
        ("\u200bjob.json", "\\u200bjob.json"),
        ("back\\slash.json", "back\\\\slash.json"),
        ("jöb.json", "jöb.json"),
        ("plain.json", "plain.json"),
    ],
)
def test_escaped_names_are_printable_and_encodable(name: str, shown: str) -> None:
    assert escaped(name) == shown
    assert escaped(name).isprintable()
    escaped(name).encode("utf-8")  # no surrogate left


def test_plain_names() -> None:
    assert is_plain("jöb.json")
    assert not is_plain(os.fsdecode(b"\xff.json"))
    assert not is_plain("a\tb")
    assert plain_name(os.fsdecode(b"\xff")) == plain_name(os.fsdecode(b"\xff"))
    assert plain_name(os.fsdecode(b"\xff")) != plain_name(os.fsdecode(b"\xfe"))
    assert is_plain(plain_name(os.fsdecode(b"\xff")))


def _drop_bytes(settings: Settings, name: bytes, data: bytes) -> None:
    """Write elsewhere on the filesystem, then rename in under a name of any bytes."""
    staged = os.path.join(os.fsencode(settings.folders.staging), b".staged.tmp")
    with open(staged, "wb") as f:
        f.write(data)
    os.rename(staged, os.path.join(os.fsencode(settings.folders.dump), name))


def _check_everything_is_clean(settings: Settings, jobs: Jobs) -> list[dict[str, object]]:
    documents = []
    for path in sorted(settings.folders.status.glob("*.json")):
        text = path.read_bytes().decode("utf-8")  # strict UTF-8: no surrogate got in
        document = json.loads(text)
        for value in (document["job_id"], document["submitted_as"], document["detail"]):
            assert isinstance(value, str) and value.isprintable(), value
        documents.append(document)
    for record in jobs.read.jobs():
        assert record.source_name.isprintable()
        record.source_name.encode("utf-8")
    return documents


def test_a_name_that_is_not_utf8_no_longer_stops_the_spooler(
    tree: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The report of issue 9: the spooler crashed on b'job\\xff\\xfe.json' at every start,
    and none of 43 waiting jobs got a status file."""
    _drop_bytes(tree, b"job\xff\xfe.json", json.dumps(good_job()).encode())
    for i in range(43):
        _drop_bytes(tree, f"ok{i}.json".encode(), json.dumps(good_job()).encode())
    caplog.set_level(logging.INFO)
    spooler = Spooler(tree)
    try:
        spooler.run_once()
        documents = _check_everything_is_clean(tree, spooler.jobs)
        bad = [d for d in documents if d["job_id"] not in {f"ok{i}" for i in range(43)}]
        (refused,) = bad
        assert refused["status"] == "ERROR"
        assert refused["submitted_as"] == "job\\xff\\xfe.json"
        assert "the file name 'job\\xff\\xfe.json' gives no valid job id" in str(
            refused["error_message"]
        )
        assert sum(d["status"] == "QUEUED" for d in documents) == 43
        assert not list(tree.folders.dump.iterdir())
        assert not list(tree.folders.claimed.iterdir())
    finally:
        spooler.close()
    for record in caplog.records:
        record.getMessage().encode("utf-8")  # the log lines too


# Any bytes a Linux file name may have: no '/', no NUL, not '.' or '..', at most 255 bytes.
names = st.binary(min_size=1, max_size=NAME_MAX).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(names, min_size=1, max_size=6, unique=True))
def test_names_of_any_bytes_through_the_real_intake(
    tmp_path_factory: pytest.TempPathFactory, batch: list[bytes]
) -> None:
    tree = init_tree(tmp_path_factory.mktemp("names") / "lab")
    for name in batch:
        _drop_bytes(tree, name, json.dumps(good_job()).encode())
    handler = _Collect()
    logging.getLogger().addHandler(handler)
    try:
        for _ in range(2):  # a second run (a restart) over the same tree must not fail either
            spooler = Spooler(tree)
            try:
                spooler.run_once()
                documents = _check_everything_is_clean(tree, spooler.jobs)
            finally:
                spooler.close()
    finally:
        logging.getLogger().removeHandler(handler)
    for message in handler.messages:
        message.encode("utf-8")
    ignored = [n for n in batch if is_ignored_name(os.fsdecode(n))]
    left = sorted(os.listdir(os.fsencode(tree.folders.dump)))
    assert left == sorted(ignored)  # the documented rule: hidden and temporary names wait
    assert len(documents) == len(batch) - len(ignored)  # every other file got a status file
    shown = sorted(str(d["submitted_as"]) for d in documents)
    assert shown == sorted(escaped(os.fsdecode(n)) for n in batch if n not in ignored)
    for document in documents:
        assert document["status"] in (JobState.QUEUED, JobState.ERROR)
    assert not list(tree.folders.claimed.iterdir())


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(self.format(record))


def _the_only_job(tree: Settings) -> JobRecord:
    """Run the spooler once over the tree; the one job it recorded."""
    spooler = Spooler(tree)
    try:
        spooler.run_once()
        (record,) = spooler.jobs.read.jobs()
    finally:
        spooler.close()
    return record


def test_a_long_name_of_255_bytes_is_refused_under_a_labspool_id(tree: Settings) -> None:
    name = ("é" * 124 + "xx.json").encode()
    assert len(name) == NAME_MAX
    _drop_bytes(tree, name, json.dumps(good_job()).encode())
    record = _the_only_job(tree)
    assert record.job_id.startswith("rejected.")
    assert record.source_name == name.decode()
    assert (tree.folders.rejected / f"{record.job_id}.json").exists()


def test_look_alike_names_are_refused_with_the_name_shown(tree: Settings) -> None:
    look_alike = "j\u043eb.json"  # a Cyrillic o
    _drop_bytes(tree, look_alike.encode(), json.dumps(good_job()).encode())
    record = _the_only_job(tree)
    assert record.state is JobState.ERROR
    assert look_alike in str(record.error_message)


def test_a_claimed_file_under_a_made_name_is_recovered_after_a_crash(tree: Settings) -> None:
    """Killed between the claim (renamed to a plain name) and the record: the next start
    admits the orphan under its plain name."""
    claimed = tree.folders.claimed
    claimed.mkdir(parents=True, exist_ok=True)
    orphan = claimed / plain_name(os.fsdecode(b"\xff.json"))
    orphan.write_text(json.dumps(good_job()))
    record = _the_only_job(tree)
    assert record.state is JobState.ERROR and record.source_name == orphan.name
    assert not list(claimed.iterdir())
