"""The live page's endpoints in process: what each caller sees, and what is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from spooler.core.pause import PauseState, write_pause
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.statusfile import status_document
from spooler.core.store import JobStore
from spooler.gateway import page
from spooler.gateway.app import make_app
from tests.conftest import add_users, record_job

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def tokens(tree: Settings) -> dict[str, str]:
    return add_users(tree, {"alice": {}, "bob": {}, "root": {"operator": True}})


@pytest.fixture
def client(tree: Settings, tokens: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(make_app(tree)) as test_client:
        yield test_client


def bearer(tokens: dict[str, str], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}:{tokens[user]}"}


def test_the_shell_and_its_files_are_served_with_a_strict_policy(client: TestClient) -> None:
    for path in ("/", "/jobs/anything"):
        answer = client.get(path)
        assert answer.status_code == 200 and b'src="/static/page.js"' in answer.content
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert b"<script>" not in answer.content  # nothing inline: the policy forbids it
    script = client.get("/static/page.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javasc")
    assert b"innerHTML" not in script.content  # every value shown as text
    for name in ("../app.py", "index.html", "nope.js", "%2e%2e%2fapp.py"):
        assert client.get(f"/static/{name}").status_code == 404


def test_an_operator_sees_every_job_a_user_only_their_own(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    record_job(tree, "a1", "alice", JobState.QUEUED, JobState.RUNNING)
    record_job(tree, "a2", "alice", JobState.QUEUED)
    record_job(tree, "b1", "bob", JobState.QUEUED)
    record_job(tree, "b2", "bob", JobState.QUEUED, JobState.RUNNING, JobState.ERROR)
    record_job(tree, "x1", None, JobState.QUEUED)
    root = client.get("/ui/overview", headers=bearer(tokens, "root")).json()
    assert root["operator"] and root["status"] == "OK"
    assert [j["job_id"] for j in root["jobs"]] == ["a1", "a2", "b1", "x1", "b2"]
    by_id = {j["job_id"]: j for j in root["jobs"]}
    assert by_id["a2"]["queue_position"] == 1 and by_id["x1"]["user"] is None
    assert by_id["a1"]["status"] == "RUNNING" and by_id["a1"]["shots_requested"] == 10
    assert [e["job_id"] for e in root["errors"]] == ["b2"]
    assert root["errors"][0]["error_message"] == "the atoms were lost"
    alice = client.get("/ui/overview", headers=bearer(tokens, "alice")).json()
    assert not alice["operator"] and [j["job_id"] for j in alice["jobs"]] == ["a1", "a2"]
    assert alice["errors"] == []
    bob = client.get("/ui/overview", headers=bearer(tokens, "bob")).json()
    assert [j["job_id"] for j in bob["jobs"]] == ["b1", "b2"] and len(bob["errors"]) == 1


def test_another_users_job_is_answered_like_one_that_does_not_exist(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    record_job(tree, "a1", "alice", JobState.QUEUED)
    (tree.folders.sds / "a1").mkdir(parents=True)
    (tree.folders.sds / "a1" / "a1.png").write_bytes(PNG)
    own = client.get("/ui/jobs/a1", headers=bearer(tokens, "alice"))
    assert own.status_code == 200 and own.json()["user"] == "alice" and own.json()["picture"]
    assert [h["status"] for h in own.json()["history"]] == ["INITIALIZING", "QUEUED"]
    picture = client.get("/ui/jobs/a1/picture", headers=bearer(tokens, "alice"))
    assert picture.content == PNG and picture.headers["content-type"] == "image/png"
    assert client.get("/ui/jobs/a1/picture", headers=bearer(tokens, "root")).content == PNG
    for path in ("/ui/jobs/a1", "/ui/jobs/a1/picture"):
        theirs = client.get(path, headers=bearer(tokens, "bob"))
        unknown = client.get(path.replace("a1", "zz"), headers=bearer(tokens, "bob"))
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json()["detail"].replace("a1", "zz") == unknown.json()["detail"]


def test_a_done_job_shows_a_summary_of_its_result(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    record_job(tree, "a1", "alice", JobState.QUEUED, JobState.RUNNING, JobState.DONE)
    counts = {f"{k}": 10 - k for k in range(10)}
    result = {
        "success": True,
        "results": [{"header": {"name": "rabi"}, "shots": 55, "data": {"counts": counts}}],
    }
    (tree.folders.results / "a1.json").write_text(json.dumps(result))
    shown = client.get("/ui/jobs/a1", headers=bearer(tokens, "alice")).json()
    (experiment,) = shown["result"]["experiments"]
    assert experiment["name"] == "rabi" and experiment["shots"] == 55
    assert experiment["counts"][0] == ["0", 10] and len(experiment["counts"]) == 8
    assert experiment["outcomes"] == 10 and shown["picture"] is False
    (tree.folders.results / "a1.json").write_text("{damaged")
    assert client.get("/ui/jobs/a1", headers=bearer(tokens, "alice")).json()["result"] is None


def test_the_pause_is_shown_to_operators_with_who_to_users_without(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    store = JobStore(tree.folders.database)
    try:
        with store.transaction() as tx:
            write_pause(tx, PauseState(since=0.0, by="ops@lab-pc", reason="laser realignment"))
    finally:
        store.close()
    root = client.get("/ui/overview", headers=bearer(tokens, "root")).json()
    assert root["paused"] and "ops@lab-pc" in root["pause"]
    alice = client.get("/ui/overview", headers=bearer(tokens, "alice")).json()
    assert alice["paused"] and alice["pause"] == "the machine is paused: laser realignment"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer alice",
        "Bearer alice:",
        "Bearer :x",
        "Basic YWxpY2U6eA==",
        "Bearer alice:wrong",
        "Bearer alice:\x7f",
        "Bearer " + "a" * 5000 + ":x",
    ],
)
def test_the_page_data_needs_a_valid_user_and_token(
    client: TestClient, tree: Settings, header: str | None
) -> None:
    record_job(tree, "a1", "alice", JobState.QUEUED)
    headers = {} if header is None else {"Authorization": header}
    for path in ("/ui/overview", "/ui/jobs/a1", "/ui/jobs/a1/picture"):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 401, (path, header)
        assert answer.json()["status"] == "ERROR" and "a1" not in answer.text


def test_a_users_token_is_not_an_operators(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    mixed = {"Authorization": f"Bearer root:{tokens['alice']}"}
    assert client.get("/ui/overview", headers=mixed).status_code == 401
    long_id = "/ui/jobs/" + "j" * 500
    assert client.get(long_id, headers=bearer(tokens, "root")).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/ui/jobs/..%2F..%2Fstate%2Flabspool.sqlite3",
        "/ui/jobs/../overview",
        "/ui/jobs/%00",
        "/ui/jobs/a1%2F..%2Fa1/picture",
        "/ui/jobs/a1/picture/..%2F..%2F..%2Fetc%2Fpasswd",
        "/jobs/a1/../../etc/passwd",
    ],
)
def test_path_tricks_in_job_ids_find_nothing(
    client: TestClient, tokens: dict[str, str], tree: Settings, path: str
) -> None:
    record_job(tree, "a1", "alice", JobState.QUEUED)
    answer = client.get(path, headers=bearer(tokens, "root"))
    assert answer.status_code in (200, 404), (path, answer.status_code)
    if answer.status_code == 200:  # the page's shell, or the overview httpx normalised to
        assert answer.headers["content-type"].startswith(("text/html", "application/json"))
        assert b"root:" not in answer.content and b"SQLite" not in answer.content
    else:
        assert answer.json()["status"] == "ERROR"


def test_an_operator_sees_what_was_quarantined_a_user_does_not(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    from spooler.core.items import Quarantine

    quarantine = Quarantine(tree.folders.quarantine, "result daemon")
    for i in range(12):
        quarantine.put(None, f"reason {i}", name=f"shot{i}.h5", job_id="j1")
    (tree.folders.quarantine / "junk.reason.json").write_text("{damaged")
    (tree.folders.quarantine / "link.reason.json").symlink_to("/etc/passwd")
    root = client.get("/ui/overview", headers=bearer(tokens, "root")).json()
    junk, *shown = root["quarantined"]  # the newest first
    assert junk["item"] == "junk" and junk["reason"].startswith("unreadable: ")
    assert len(shown) == 9 and all(q["job_id"] == "j1" for q in shown)
    assert {q["reason"] for q in shown} <= {f"reason {i}" for i in range(12)}
    assert all(q["daemon"] == "result daemon" for q in shown)
    alice = client.get("/ui/overview", headers=bearer(tokens, "alice")).json()
    assert alice["quarantined"] == []


def test_a_picture_that_is_a_symlink_is_not_followed(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    record_job(tree, "a1", "alice", JobState.QUEUED)
    (tree.folders.sds / "a1").mkdir(parents=True)
    (tree.folders.sds / "a1" / "a1.png").symlink_to("/etc/passwd")
    answer = client.get("/ui/jobs/a1/picture", headers=bearer(tokens, "alice"))
    assert answer.status_code == 404 and answer.json()["status"] == "ERROR"
    assert b"root:" not in answer.content


def test_everybody_sees_the_machines_health_and_why_a_job_waits(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    from spooler.core.health import STALE_AFTER_S, Health, Reason, encode_reasons
    from spooler.core.jobs import Jobs
    from spooler.core.timestamps import iso_time

    record_job(tree, "a1", "alice", JobState.QUEUED)
    record_job(tree, "b1", "bob", JobState.QUEUED, JobState.RUNNING, JobState.DONE)
    never = client.get("/ui/overview", headers=bearer(tokens, "alice")).json()["machine"]
    assert never["operational"] is False and never["since"] is None
    assert never["status_msg"].startswith("the machine has not been looked at yet")
    now = time.time()
    hostile = '<img src=x onerror="window.pwned=1">'
    reasons = [Reason("blacs", "the queue is paused", now - 120), Reason("device:x", hostile, now)]
    store = JobStore(tree.folders.database, clock=lambda: now)
    try:
        with store.transaction() as tx:
            tx.set_health(operational=False, reasons=encode_reasons(reasons), since=now - 120)
    finally:
        store.close()
    waiting = Health(False, tuple(reasons), now - 120, now).waiting_note
    jobs = Jobs(tree.folders)
    try:
        with jobs.change() as tx:
            tx.note("a1", waiting)
    finally:
        jobs.close()
    expected = {
        "operational": False,
        "status_msg": f"blacs: the queue is paused; device:x: {hostile}",
        "reasons": [
            {"component": "blacs", "message": "the queue is paused", "since": iso_time(now - 120)},
            {"component": "device:x", "message": hostile, "since": iso_time(now)},
        ],
        "since": iso_time(now - 120),
        "last_check": iso_time(now),
    }
    for user in ("alice", "root"):  # a user sees the reasons too: they say why jobs wait
        overview = client.get("/ui/overview", headers=bearer(tokens, user)).json()
        assert overview["machine"] == expected, user
        rows = {j["job_id"]: j for j in overview["jobs"]}
        assert rows["a1"]["note"] == waiting.replace("; ", ", ")  # the detail's last note
    assert client.get("/ui/jobs/a1", headers=bearer(tokens, "alice")).json()["machine"] == expected

    # operational: the banner's data says so; a stale record is not believed
    store = JobStore(tree.folders.database, clock=lambda: now)
    try:
        with store.transaction() as tx:
            tx.set_health(operational=True, reasons="[]", since=now)
    finally:
        store.close()
    up = client.get("/ui/overview", headers=bearer(tokens, "bob")).json()["machine"]
    assert up["operational"] is True and up["reasons"] == [] and up["status_msg"] == "operational"
    old = now - STALE_AFTER_S - 10
    store = JobStore(tree.folders.database, clock=lambda: old)
    try:
        with store.transaction() as tx:
            tx.set_health(operational=True, reasons="[]", since=old - 3600)
    finally:
        store.close()
    stale = client.get("/ui/overview", headers=bearer(tokens, "bob")).json()["machine"]
    assert stale["operational"] is False and stale["since"] == iso_time(old)
    assert [r["component"] for r in stale["reasons"]] == ["spooler"]


def test_an_operator_sees_the_first_jobs_in_queue_order_and_how_many_there_are(
    client: TestClient, tokens: dict[str, str], tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page, "ACTIVE_SHOWN", 3)
    record_job(tree, "r1", "bob", JobState.QUEUED, JobState.RUNNING)
    for n in range(5):
        record_job(tree, f"q{n}", ("alice", "bob", None)[n % 3], JobState.QUEUED)
    record_job(tree, "new", "alice")  # INITIALIZING: being admitted, after the queue
    record_job(tree, "old", "alice", JobState.QUEUED, JobState.RUNNING, JobState.DONE)

    def overview(query: str = "") -> dict[str, Any]:
        answer = client.get(f"/ui/overview{query}", headers=bearer(tokens, "root"))
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    first = overview()
    assert [j["job_id"] for j in first["jobs"]] == ["r1", "q0", "q1", "old"]  # + the finished
    assert [j["queue_position"] for j in first["jobs"]] == [None, 1, 2, None]
    assert first["active"] == {
        "total": 7,
        "offset": 0,
        "shown": 3,
        "limit": 3,
        "more": 4,
        "by_state": {"RUNNING": 1, "QUEUED": 5, "INITIALIZING": 1},
        "by_user": [
            {"user": "alice", "RUNNING": 0, "QUEUED": 2, "INITIALIZING": 1, "total": 3},
            {"user": "bob", "RUNNING": 1, "QUEUED": 2, "INITIALIZING": 0, "total": 3},
            {"user": None, "RUNNING": 0, "QUEUED": 1, "INITIALIZING": 0, "total": 1},
        ],
    }
    second = overview("?offset=3")
    assert [j["job_id"] for j in second["jobs"]] == ["q2", "q3", "q4", "old"]
    assert [j["queue_position"] for j in second["jobs"][:3]] == [3, 4, 5]
    assert second["active"]["offset"] == 3 and second["active"]["more"] == 1
    last = overview("?offset=6")
    assert [j["job_id"] for j in last["jobs"]] == ["new", "old"] and last["active"]["more"] == 0
    assert [j["job_id"] for j in overview("?offset=99")["jobs"]] == ["old"]
    # the rows say what the status documents say (estimates included), without the history
    store = JobStore(tree.folders.database)
    try:
        with store.snapshot() as reader:
            for row in first["jobs"] + second["jobs"]:
                document = status_document(reader, reader.require(row["job_id"]))
                for key, value in row.items():
                    if key not in ("note", "estimated_start", "estimated_finish", "elapsed_s"):
                        assert document[key] == value, (row["job_id"], key)
                assert row["note"] == document["detail"].split("; ")[-1]
    finally:
        store.close()


def test_a_user_sees_their_own_active_jobs_counted_and_paged(
    client: TestClient, tokens: dict[str, str], tree: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page, "ACTIVE_SHOWN", 2)
    for n in range(6):
        record_job(tree, f"q{n}", ("alice", "bob")[n % 2], JobState.QUEUED)
    record_job(tree, "r1", "alice", JobState.QUEUED, JobState.RUNNING)
    alice = client.get("/ui/overview", headers=bearer(tokens, "alice")).json()
    assert [j["job_id"] for j in alice["jobs"]] == ["r1", "q0"]
    assert alice["active"]["total"] == 4 and alice["active"]["more"] == 2
    assert alice["active"]["by_state"] == {"RUNNING": 1, "QUEUED": 3, "INITIALIZING": 0}
    assert alice["active"]["by_user"] == []  # nobody else's
    more = client.get("/ui/overview?offset=2", headers=bearer(tokens, "alice")).json()
    assert [(j["job_id"], j["queue_position"]) for j in more["jobs"]] == [("q2", 3), ("q4", 5)]
    bob = client.get("/ui/overview?offset=1", headers=bearer(tokens, "bob")).json()
    assert [(j["job_id"], j["queue_position"]) for j in bob["jobs"]] == [("q3", 4), ("q5", 6)]
    assert {j["user"] for j in bob["jobs"]} == {"bob"} and bob["active"]["total"] == 3
    nobody = add_users(tree, {"carol": {}})
    carol = client.get("/ui/overview", headers=bearer(nobody, "carol")).json()
    assert carol["jobs"] == [] and carol["active"]["total"] == 0


@pytest.mark.parametrize("offset", ["-1", "x", "1.5", "", "1e3", "٣", "99999999999", "0x10"])
def test_an_offset_is_a_whole_number(
    client: TestClient, tokens: dict[str, str], offset: str
) -> None:
    answer = client.get(f"/ui/overview?offset={offset}", headers=bearer(tokens, "root"))
    assert answer.status_code == 400 and answer.json()["status"] == "ERROR"
    assert client.get(f"/ui/overview?offset={offset}").status_code == 401  # who, first
