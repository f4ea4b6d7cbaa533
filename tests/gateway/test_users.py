"""The gateway's users: ``labspool user add/list/remove`` and :meth:`Users.authenticate`."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from spooler.core.jobid import parse_job_file_name
from spooler.core.settings import Settings, load_settings
from spooler.core.store import JobStore
from spooler.gateway.users import INPUT_MAX_CHARS, User, Users, is_valid_user_name

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(run_cli: Cli, tree: Settings) -> Cli:
    """The command line on the test's tree."""
    return lambda *argv: run_cli("--config", str(tree.path), *argv)


@pytest.fixture
def users(tree: Settings) -> Iterator[Users]:
    tree.folders.create()
    store = JobStore(tree.folders.database)
    yield Users(store, tree)
    store.close()


def add(cli: Cli, *argv: str) -> str:
    """``user add``; returns the token, the last line printed."""
    code, out, err = cli("user", "add", *argv)
    assert code == 0, err
    return out.splitlines()[-1]


def test_add_prints_the_token_once_as_the_last_line(cli: Cli, users: Users) -> None:
    code, out, err = cli("user", "add", "alice")
    assert code == 0, err
    lines = out.splitlines()
    token = lines[-1]
    assert len(token) == 43 and set(token) <= set(string.ascii_letters + string.digits + "-_")
    assert out.count(token) == 1 and token not in err
    assert "only" in lines[-2] and "once" in lines[-2]
    assert users.authenticate("alice", token) == User(
        name="alice",
        operator=False,
        queued_jobs_max=100,
        job_bytes_max=1 << 20,
        requests_per_s=20.0,
    )
    assert add(cli, "bob") != token  # a new random token each time


def test_only_a_hash_of_the_token_is_stored(cli: Cli, tree: Settings) -> None:
    token = add(cli, "alice")
    files = sorted(tree.folders.state.glob("labspool.sqlite3*"))  # the database, its WAL
    stored = b"".join(path.read_bytes() for path in files)
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored  # the right place
    assert token.encode() not in stored
    assert token.encode("utf-16-le") not in stored


def test_authenticate_refuses_wrong_unknown_and_malformed_input(cli: Cli, users: Users) -> None:
    token = add(cli, "alice")
    assert users.authenticate("alice", token) is not None
    refused: list[tuple[object, object]] = [
        ("alice", token[:-1]),
        ("alice", token + "x"),
        ("alice", token.upper()),
        ("Alice", token),  # names are exact
        ("mallory", token),
        ("al-ice", token),
        ("alice", ""),
        ("", token),
        (None, token),
        ("alice", None),
        (None, None),
        ("alice", token.encode()),
        (b"alice", token),
        ("alice", 42),
        (["alice"], token),
        ("alice", token + "\x00"),
        ("alice\x00", token),
        ("alice", "x" * (INPUT_MAX_CHARS + 1)),
        ("a" * (INPUT_MAX_CHARS + 1), token),
        ("a" * 10_000_000, token),
        ("alice", "\udcff" * 10),
        ("\udcff", token),
    ]
    for name, token_given in refused:
        assert users.authenticate(name, token_given) is None, (name, token_given)  # type: ignore[arg-type]


def test_a_token_is_one_users_only(cli: Cli, users: Users) -> None:
    alice, bob = add(cli, "alice"), add(cli, "bob")
    assert users.authenticate("alice", bob) is None
    assert users.authenticate("bob", alice) is None
    assert users.authenticate("bob", bob) is not None


def test_an_existing_name_is_refused_unless_replaced(cli: Cli, users: Users) -> None:
    old = add(cli, "alice", "--operator")
    code, out, err = cli("user", "add", "alice")
    assert code == 1 and out == ""
    assert "alice exists already" in err and "--replace" in err
    assert users.authenticate("alice", old) is not None  # nothing changed
    new = add(cli, "alice", "--replace")
    assert new != old
    assert users.authenticate("alice", old) is None
    replaced = users.authenticate("alice", new)
    assert replaced is not None and not replaced.operator  # the flags as given with --replace


def test_remove(cli: Cli, users: Users) -> None:
    token = add(cli, "alice")
    code, out, err = cli("user", "remove", "alice")
    assert code == 0, err
    assert "alice" in out and "removed" in out
    assert users.authenticate("alice", token) is None
    assert users.get("alice") is None
    code, out, err = cli("user", "remove", "alice")
    assert code == 1 and "there is no user 'alice'" in err


def test_remove_without_a_store(cli: Cli, tree: Settings) -> None:
    tree.folders.database.unlink(missing_ok=True)
    code, _, err = cli("user", "remove", "alice")
    assert code == 1 and "there is no user 'alice'" in err
    assert not tree.folders.database.exists()


@pytest.mark.parametrize("name", ["al-ice", "-alice", "_alice", ".a", "", "a" * 65, "äli", "a b"])
def test_a_bad_name_is_refused_with_a_message(cli: Cli, users: Users, name: str) -> None:
    code, out, err = cli("user", "add", "--", name)
    assert code == 1 and out == ""
    assert "is not a valid user name" in err
    assert "no '-'" in err
    assert users.records() == []


def test_the_names_are_a_subset_of_what_job_file_names_carry() -> None:
    """Every character (and the longest name) the gateway allows reads back from the job file
    name the gateway writes, file_<id>-<user>.json (spooler.core.jobid)."""
    for code in range(0x3000):
        char = chr(code)
        for name in (char, f"a{char}", f"a{char}" + "b" * 62):
            if is_valid_user_name(name):
                assert parse_job_file_name(f"file_20260101_x-{name}.json").user == name
    assert is_valid_user_name("a" * 64) and not is_valid_user_name("a" * 65)
    assert is_valid_user_name("Jane.Doe+lab@uni.example_1")
    assert not is_valid_user_name("alice\n")


def test_list_shows_no_hash(cli: Cli, tree: Settings) -> None:
    token = add(cli, "bob")
    add(cli, "alice", "--operator", "--requests-per-s", "2.5", "--queued-jobs-max", "7")
    digest = hashlib.sha256(token.encode()).hexdigest()
    code, out, err = cli("user", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [u["name"] for u in listed] == ["alice", "bob"]
    alice, bob = listed
    assert alice["operator"] is True and bob["operator"] is False
    assert (alice["queued_jobs_max"], alice["requests_per_s"]) == (7, 2.5)
    assert alice["own_limits"] == {"queued_jobs_max": 7, "requests_per_s": 2.5}
    assert (bob["queued_jobs_max"], bob["requests_per_s"], bob["own_limits"]) == (100, 20.0, {})
    assert alice["job_bytes_max"] == bob["job_bytes_max"] == tree.limits.job_file_max_bytes
    assert bob["created_at"].endswith("+00:00") and bob["last_used_at"] is None
    code, text, _ = cli("user", "list")
    assert code == 0
    assert "alice" in text and "bob" in text and "never" in text and "7*" in text
    for shown in (out, text):
        assert digest not in shown and token not in shown


def test_list_of_none(cli: Cli, tree: Settings) -> None:
    tree.folders.database.unlink(missing_ok=True)
    assert cli("user", "list", "--json")[:2] == (0, "[]\n")
    code, out, _ = cli("user", "list")
    assert code == 0 and "no users" in out
    assert not tree.folders.database.exists()  # listing creates nothing


def test_own_limits_override_the_defaults_which_follow_the_configuration(
    cli: Cli, tree: Settings
) -> None:
    alice = add(cli, "alice", "--job-bytes-max", "4096", "--queued-jobs-max", "3")
    bob = add(cli, "bob")
    raw = yaml.safe_load(tree.path.read_text(encoding="utf-8"))
    raw["gateway"].update(queued_jobs_max=50, requests_per_s=1.5)
    tree.path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    changed = load_settings(tree.path)
    store = JobStore(changed.folders.database)
    try:
        users = Users(store, changed)
        assert users.authenticate("alice", alice) == User(
            name="alice", operator=False, queued_jobs_max=3, job_bytes_max=4096, requests_per_s=1.5
        )
        assert users.authenticate("bob", bob) == User(
            name="bob",
            operator=False,
            queued_jobs_max=50,
            job_bytes_max=1 << 20,
            requests_per_s=1.5,
        )
    finally:
        store.close()


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (("--queued-jobs-max", "0"), "queued_jobs_max: 0 is less than the minimum of 1"),
        (("--requests-per-s", "0"), "requests_per_s: 0.0 is less than or equal to the minimum"),
        (("--requests-per-s", "nan"), "requests_per_s: nan is not a number"),
        (("--job-bytes-max", "2097152"), "above limits.job_file_max_bytes (1048576)"),
        (("--job-bytes-max", "10"), "job_bytes_max: 10 is less than the minimum of 64"),
    ],
)
def test_bad_own_limits_are_refused(
    cli: Cli, users: Users, option: tuple[str, str], fragment: str
) -> None:
    code, out, err = cli("user", "add", "alice", *option)
    assert code == 1 and out == ""
    assert fragment in err
    assert users.records() == []


def test_last_use_is_recorded_at_most_once_a_minute(cli: Cli, users: Users) -> None:
    add(cli, "alice")
    users.record_use("alice", at=1000.0)
    users.record_use("alice", at=1030.0)  # within the minute: not written
    assert users.records()[0].last_used_at == 1000.0
    users.record_use("alice", at=1061.0)
    assert users.records()[0].last_used_at == 1061.0
    code, out, _ = cli("user", "list", "--json")
    assert code == 0
    assert json.loads(out)[0]["last_used_at"] == "1970-01-01T00:17:41.000+00:00"


def test_a_user_added_elsewhere_counts_at_once(cli: Cli, users: Users) -> None:
    """The gateway's Users sees another process's add and remove at its next call."""
    assert users.authenticate("carol", "x" * 43) is None
    token = add(cli, "carol")  # another connection, as `labspool user add` from a shell
    assert users.authenticate("carol", token) is not None
    assert cli("user", "remove", "carol")[0] == 0
    assert users.authenticate("carol", token) is None


def test_the_api_adds_and_removes(users: Users) -> None:
    user, token = users.add("dave", operator=True, requests_per_s=3)
    assert user.operator and user.requests_per_s == 3.0
    assert users.authenticate("dave", token) == user == users.get("dave")
    users.remove("dave")
    assert users.records() == [] and users.authenticate("dave", token) is None


def test_the_database_is_where_the_folders_say(cli: Cli, tree: Settings) -> None:
    tree.folders.database.unlink(missing_ok=True)
    add(cli, "alice")  # creates the store (as `labspool pause` does)
    assert Path(tree.folders.database).is_file()
