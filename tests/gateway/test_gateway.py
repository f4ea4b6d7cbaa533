"""The HTTP gateway in process (Starlette's TestClient): the client's protocol, the users'
separation, and a corpus of hostile requests, each refused with JSON and nothing written."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from spooler.core.health import STALE_AFTER_S, Reason
from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobStore
from spooler.core.timestamps import iso_time
from spooler.gateway.app import make_app
from spooler.pipeline.daemon import Spooler
from tests.conftest import add_users, good_job, record_health, record_job
from tests.fakes import Clock

URL = "/api/v2/singlequdit"


@pytest.fixture
def tokens(tree: Settings) -> dict[str, str]:
    return add_users(
        tree,
        {
            "alice": {},
            "bob": {},
            "root": {"operator": True},
            "slow": {"requests_per_s": 1.0},
            "few": {"queued_jobs_max": 1},
        },
    )


@pytest.fixture
def client(tree: Settings, tokens: dict[str, str], clock: Clock) -> Iterator[TestClient]:
    with TestClient(make_app(tree, clock=clock)) as test_client:
        yield test_client


def auth(tokens: dict[str, str], user: str) -> dict[str, str]:
    return {"username": user, "token": tokens[user]}


def post(client: TestClient, tokens: dict[str, str], user: str, job: Any) -> Any:
    body = {"job": json.dumps(job), **auth(tokens, user)}
    return client.post(f"{URL}/post_job", json=body)


def dumped(tree: Settings) -> list[str]:
    return sorted(p.name for p in tree.folders.dump.iterdir())


def test_get_config_is_what_the_client_builds_its_backend_from(
    client: TestClient, tokens: dict[str, str]
) -> None:
    answer = client.get(f"{URL}/get_config", params=auth(tokens, "alice"))
    assert answer.status_code == 200
    config = answer.json()
    assert config["backend_name"] == "singlequdit" and config["cold_atom_type"] == "spin"
    allowed = {"name", "parameters", "qasm_def", "coupling_map", "latency_map", "conditional"}
    assert all(set(g) <= allowed | {"description"} for g in config["gates"])
    assert {"max_shots", "max_experiments", "supported_instructions"} <= set(config)
    refused = client.get(f"{URL}/get_config", params={"username": "alice", "token": "x"})
    assert refused.status_code == 401 and refused.json()["status"] == "ERROR"


def test_a_posted_job_is_followed_to_its_state_by_its_user_only(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    answer = post(client, tokens, "alice", good_job())
    assert answer.status_code == 200
    posted = answer.json()
    job_id = posted["job_id"]
    assert posted["status"] == "INITIALIZING" and posted["detail"] == "Got your json."
    (name,) = dumped(tree)
    assert name == f"file_{job_id}-alice.json"
    assert json.loads((tree.folders.dump / name).read_bytes()) == good_job()

    status = client.get(f"{URL}/get_job_status", params={"job_id": job_id, **auth(tokens, "alice")})
    assert status.json()["status"] == "INITIALIZING", "posted, not yet taken by the spooler"
    spooler = Spooler(tree)
    try:
        spooler.run_once()
    finally:
        spooler.close()
    mine = client.get(f"{URL}/get_job_status", params={"job_id": job_id, **auth(tokens, "alice")})
    assert mine.status_code == 200 and mine.json()["status"] in ("QUEUED", "RUNNING")
    # the client's error_message() sends json={"job_id": ...} and no job_id
    by_json = client.get(
        f"{URL}/get_job_status",
        params={"json": json.dumps({"job_id": job_id}), **auth(tokens, "alice")},
    )
    assert by_json.json()["job_id"] == job_id and by_json.json()["error_message"] == "None"
    theirs = client.get(f"{URL}/get_job_status", params={"job_id": job_id, **auth(tokens, "bob")})
    nobody = client.get(
        f"{URL}/get_job_status", params={"job_id": "nosuchjob", **auth(tokens, "bob")}
    )
    assert theirs.status_code == nobody.status_code == 404
    assert theirs.json()["detail"].replace(job_id, "J") == nobody.json()["detail"].replace(
        "nosuchjob", "J"
    ), "another user's job is answered exactly like one that does not exist"
    operator = client.get(
        f"{URL}/get_job_status", params={"job_id": job_id, **auth(tokens, "root")}
    )
    assert operator.status_code == 200


def test_the_result_is_finished_when_done_and_an_error_the_client_raises_otherwise(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    good = post(client, tokens, "alice", good_job()).json()["job_id"]
    bad = post(client, tokens, "alice", {"experiment_0": {"shots": 1}}).json()["job_id"]
    spooler = Spooler(tree)
    try:
        spooler.run_once()
    finally:
        spooler.close()
    params = auth(tokens, "alice")
    waiting = client.get(f"{URL}/get_job_result", params={"job_id": good, **params}).json()
    assert waiting["status"] in ("QUEUED", "RUNNING"), "the client polls again"
    refused = client.get(f"{URL}/get_job_result", params={"job_id": bad, **params}).json()
    assert refused["status"] == "error" and "instructions" in refused["error_message"]
    jobs = Jobs(tree.folders)
    try:
        with jobs.change() as tx:
            if tx.require(good).state is JobState.QUEUED:
                tx.transition(good, JobState.RUNNING)
            tx.transition(good, JobState.DONE)
    finally:
        jobs.close()
    result = {"job_id": good, "status": "finished", "results": [], "success": True}
    (tree.folders.results / f"{good}.json").write_text(json.dumps(result))
    done = client.get(f"{URL}/get_job_result", params={"job_id": good, **params}).json()
    assert done["status"] == "finished" and done["job_id"] == good
    unknown = client.get(f"{URL}/get_job_result", params={"job_id": "nope", **params})
    assert unknown.status_code == 404 and unknown.json()["status"] == "error"


def test_limits_answer_429_and_write_nothing(
    client: TestClient, tokens: dict[str, str], tree: Settings, clock: Clock
) -> None:
    codes = [
        client.get(f"{URL}/get_config", params=auth(tokens, "slow")).status_code for _ in range(4)
    ]
    assert codes[:2] == [200, 200] and codes[2:] == [429, 429], "a burst of 2 at 1 a second"
    clock.now += 1.0
    assert client.get(f"{URL}/get_config", params=auth(tokens, "slow")).status_code == 200
    assert post(client, tokens, "few", good_job()).status_code == 200
    second = post(client, tokens, "few", good_job())
    assert second.status_code == 429 and "1 job(s) waiting" in second.json()["error_message"]
    assert len(dumped(tree)) == 1


HOSTILE: list[tuple[str, str, dict[str, Any], Any, int]] = [
    # (name, method and path, query, body (bytes, or JSON), expected code)
    ("no credentials", f"POST {URL}/post_job", {}, {"job": "{}"}, 401),
    (
        "empty token",
        f"POST {URL}/post_job",
        {},
        {"job": "{}", "username": "alice", "token": ""},
        401,
    ),
    (
        "token not a string",
        f"POST {URL}/post_job",
        {},
        {"job": "{}", "username": "alice", "token": 7},
        401,
    ),
    ("malformed JSON", f"POST {URL}/post_job", {}, b'{"job": ', 400),
    ("NaN in the body", f"POST {URL}/post_job", {}, b'{"job": NaN}', 400),
    ("duplicate keys", f"POST {URL}/post_job", {}, b'{"job": "{}", "job": "{}"}', 400),
    ("body a list", f"POST {URL}/post_job", {}, b"[]", 400),
    ("job not a string", f"POST {URL}/post_job", {}, {"job": {"experiment_0": {}}}, 400),
    ("job missing", f"POST {URL}/post_job", {}, {}, 400),
    ("body over the cap", f"POST {URL}/post_job", {}, b"x" * (3 << 20), 413),
    ("unknown backend", "POST /api/v2/fermions/post_job", {}, {"job": "{}"}, 404),
    ("status of an unknown backend", "GET /api/v2/fermions/get_backend_status", {}, None, 404),
    ("POST on get_backend_status", f"POST {URL}/get_backend_status", {}, {}, 405),
    ("path trick", "GET /api/v2/..%2f..%2fetc/get_config", {}, None, 404),
    ("GET on post_job", f"GET {URL}/post_job", {}, None, 405),
    ("no such endpoint", f"GET {URL}/delete_everything", {}, None, 404),
    ("job id with a path", f"GET {URL}/get_job_status", {"job_id": "../status/x"}, None, 400),
    ("job id missing", f"GET {URL}/get_job_status", {}, None, 400),
    ("json not JSON", f"GET {URL}/get_job_status", {"json": "{job_id"}, None, 400),
    ("json not an object", f"GET {URL}/get_job_status", {"json": "[1]"}, None, 400),
    ("job id NUL", f"GET {URL}/get_job_result", {"job_id": "a\x00b"}, None, 400),
    ("job id huge", f"GET {URL}/get_job_status", {"job_id": "a" * 5000}, None, 400),
]


@pytest.mark.parametrize(
    ("name", "route", "query", "body", "code"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
def test_hostile_requests_get_a_clear_json_error_and_nothing_is_written(
    client: TestClient,
    tokens: dict[str, str],
    tree: Settings,
    name: str,
    route: str,
    query: dict[str, Any],
    body: Any,
    code: int,
) -> None:
    method, path = route.split(" ", 1)
    credentials = auth(tokens, "alice")
    if method == "GET":
        answer = client.get(path, params={**credentials, **query})
    elif isinstance(body, bytes):
        answer = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        if code not in (401,):
            body = {**credentials, **body}
        answer = client.post(path, json=body)
    assert answer.status_code == code, answer.text
    document = answer.json()
    assert document["status"] in ("ERROR", "error") and document["error_message"] != "None"
    assert dumped(tree) == []
    assert not list(tree.folders.staging.iterdir())


def last_uses(tree: Settings) -> dict[str, float | None]:
    """Read-only, so that it does not wait for the write lock."""
    uri = f"file:{tree.folders.database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return dict(db.execute("SELECT name, last_used_at FROM gateway_users").fetchall())


def test_the_users_last_uses_are_written_without_holding_up_answers(
    tree: Settings, tokens: dict[str, str], clock: Clock
) -> None:
    """While a daemon holds the store's write lock, the gateway still answers at once: the
    last uses wait for the lock in a worker thread, and are written once it is free."""
    blocker = JobStore(tree.folders.database)
    try:
        # the write lock, as a daemon's long pass holds it (released before the gateway stops)
        with TestClient(make_app(tree, clock=clock)) as client, blocker.transaction():
            for user in ("alice", "bob"):
                answer = client.get(f"{URL}/get_config", params=auth(tokens, user))
                assert answer.status_code == 200
            assert last_uses(tree)["alice"] is None  # not written meanwhile
    finally:
        blocker.close()
    uses = last_uses(tree)  # the gateway's stop wrote them
    assert uses["alice"] is not None and uses["bob"] is not None and uses["root"] is None


def test_get_backend_status_answers_the_machines_health_as_the_ecosystems_servers(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    status = f"{URL}/get_backend_status"
    never = client.get(status, params=auth(tokens, "alice"))
    assert never.status_code == 200
    assert never.json() == {
        "backend_name": "singlequdit",
        "backend_version": client.get(f"{URL}/get_config", params=auth(tokens, "alice")).json()[
            "backend_version"
        ],
        "operational": False,
        "pending_jobs": 0,
        "status_msg": "the machine has not been looked at yet (is the spooler running?)",
        "last_queue_check": None,
    }
    record_job(tree, "q", "bob", JobState.QUEUED)
    record_job(tree, "r", "bob", JobState.QUEUED, JobState.RUNNING)
    record_job(tree, "e", "bob", JobState.QUEUED, JobState.ERROR)
    now = time.time()
    record_health(tree, True, [], since=now - 3600, at=now - 1)
    up = client.get(status, params=auth(tokens, "alice")).json()
    assert up["operational"] is True and up["status_msg"] == "operational"
    assert up["pending_jobs"] == 2, "QUEUED and RUNNING, everybody's"
    assert up["last_queue_check"] == iso_time(now - 1)

    # the machine is down: the answer says why
    reason = Reason("blacs", "device ni_card: DAQmx error -200279", now - 60)
    record_health(tree, False, [reason], since=now - 60, at=now)
    down = client.get(status, params=auth(tokens, "alice"))
    assert down.status_code == 200
    assert down.json()["operational"] is False
    assert down.json()["status_msg"] == "blacs: device ni_card: DAQmx error -200279"

    # the spooler stopped: its last word (operational) is not believed
    record_health(tree, True, [], since=now - 3600, at=now - STALE_AFTER_S - 30)
    stale = client.get(status, params=auth(tokens, "alice")).json()
    assert stale["operational"] is False and "is the spooler running?" in stale["status_msg"]
    assert stale["last_queue_check"] == iso_time(now - STALE_AFTER_S - 30)

    # the same credentials as every route
    for params in ({}, {"username": "alice", "token": tokens["bob"]}, {"username": "alice"}):
        refused = client.get(status, params=params)
        assert refused.status_code == 401 and refused.json()["status"] == "ERROR"
    unknown = client.get("/api/v2/fermions/get_backend_status", params=auth(tokens, "alice"))
    assert unknown.status_code == 404 and unknown.json()["status"] == "ERROR"


# -- issue 19: answers consistent at every instant, no redirects, qlued's backend list ------


def test_a_job_just_refused_answers_its_reason_before_its_status_file_is_written(
    client: TestClient, tokens: dict[str, str], tree: Settings
) -> None:
    record_job(tree, "refused1", "alice", JobState.ERROR)
    status_file = tree.folders.status / "refused1.json"
    for before in (None, {"job_id": "refused1", "status": "INITIALIZING", "detail": ""}):
        # the store has committed ERROR; the status file is not there yet, or still the old one
        status_file.unlink(missing_ok=True)
        if before is not None:
            status_file.write_text(json.dumps(before))
        params = {"job_id": "refused1", **auth(tokens, "alice")}
        status = client.get(f"{URL}/get_job_status", params=params).json()
        assert status["status"] == "ERROR" and status["error_message"] == "the atoms were lost"
        result = client.get(f"{URL}/get_job_result", params=params).json()
        assert result["status"] == "error" and result["error_message"] == "the atoms were lost"


def test_a_posted_job_is_known_while_the_spooler_takes_it_in(
    client: TestClient,
    tokens: dict[str, str],
    tree: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = post(client, tokens, "alice", good_job()).json()["job_id"]
    from spooler.core.store import Reader

    original = Reader.get
    calls = 0

    def taken_in_meanwhile(self: Reader, wanted: str) -> Any:
        """The store is read just before the spooler records the job and files it away."""
        nonlocal calls
        calls += 1
        if calls == 1:
            answer = original(self, wanted)
            (tree.folders.dump / f"file_{job_id}-alice.json").unlink()
            record_job(tree, job_id, "alice", JobState.QUEUED)
            return answer
        return original(self, wanted)

    monkeypatch.setattr(Reader, "get", taken_in_meanwhile)
    answer = client.get(f"{URL}/get_job_result", params={"job_id": job_id, **auth(tokens, "alice")})
    assert answer.status_code == 200 and answer.json()["status"] == "QUEUED"


def test_a_path_with_a_trailing_slash_is_not_redirected_to_the_requests_host(
    client: TestClient, tokens: dict[str, str]
) -> None:
    answer = client.get(
        f"{URL}/get_config/",
        params=auth(tokens, "alice"),
        headers={"host": "evil.example"},
        follow_redirects=False,
    )
    assert answer.status_code == 404 and "location" not in answer.headers
    assert answer.json()["status"] == "ERROR" and tokens["alice"] not in answer.text


def test_the_backend_list_is_qlueds_a_list_of_configurations(
    client: TestClient, tokens: dict[str, str]
) -> None:
    listed = client.get("/api/v2/backends", params=auth(tokens, "alice"))
    assert listed.status_code == 200
    (config,) = listed.json()
    served = client.get(f"{URL}/get_config", params=auth(tokens, "alice")).json()
    assert config == {k: v for k, v in served.items() if k != "status"}
    refused = client.get("/api/v2/backends")
    assert refused.status_code == 401 and refused.json()["status"] == "ERROR"


def test_a_body_of_brackets_is_refused_at_its_first_one_at_the_cost_of_a_plain_job(
    tokens: dict[str, str], tree: Settings
) -> None:
    with TestClient(make_app(tree), client=("127.0.0.1", 4000)) as client:  # a proxy
        size = 1_800_000
        hostile = b'{"job": [' + b"[]," * (size // 3) + b"[]]}"  # no credentials, 1.8 MB
        plain = json.dumps({"job": "x" * size, "username": "nobody", "token": "t"}).encode()

        def cost(body: bytes) -> tuple[float, Any]:
            started = time.process_time()
            answer = client.post(
                f"{URL}/post_job", content=body, headers={"content-type": "application/json"}
            )
            return time.process_time() - started, answer

        cost(plain)  # warm
        plain_s, plain_answer = min((cost(plain) for _ in range(3)), key=lambda c: c[0])
        hostile_s, hostile_answer = min((cost(hostile) for _ in range(3)), key=lambda c: c[0])
        assert plain_answer.status_code == 401
        assert hostile_answer.status_code == 400 and "must be a string" in hostile_answer.text
        assert hostile_s < 3 * plain_s + 0.02, (hostile_s, plain_s)
    assert dumped(tree) == []


def test_get_config_serves_the_instruction_limit_the_spooler_applies(
    tree: Settings, tokens: dict[str, str]
) -> None:
    from spooler.core.backends import get_backend

    with TestClient(make_app(tree)) as client:
        served = client.get(f"{URL}/get_config", params=auth(tokens, "alice")).json()
    assert served["max_instructions"] == get_backend("singlequdit").max_instructions
    lowered = replace(tree, limits=replace(tree.limits, instructions_per_experiment_max=7))
    with TestClient(make_app(lowered)) as client:
        config = client.get(f"{URL}/get_config", params=auth(tokens, "alice")).json()
    assert config["max_instructions"] == 7


def test_a_users_bytes_of_jobs_a_second_are_bounded(
    tree: Settings, tokens: dict[str, str], clock: Clock
) -> None:
    settings = replace(tree, gateway=replace(tree.gateway, post_bytes_per_s=2048))
    job = good_job(experiments=8)  # ~1,100 bytes: three in a burst of 4,096 ...
    assert 1000 < len(json.dumps(job)) < 1400
    with TestClient(make_app(settings, clock=clock)) as client:
        codes = [post(client, tokens, "alice", job).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = post(client, tokens, "alice", job).json()
        assert "bytes of jobs a second" in refused["error_message"]
        assert post(client, tokens, "bob", job).status_code == 200, "each user their own"
        clock.now += 1.0  # ... and 2,048 more a second
        assert post(client, tokens, "alice", job).status_code == 200
    assert len(dumped(settings)) == 5


def test_bodies_from_one_address_are_refused_unread_beyond_its_budget(
    tree: Settings, tokens: dict[str, str], clock: Clock
) -> None:
    settings = replace(tree, gateway=replace(tree.gateway, post_bytes_per_s=1024))
    headers = {"content-type": "application/json"}

    def posted(client: TestClient) -> list[Any]:
        return [
            client.post(
                f"{URL}/post_job",
                content=json.dumps({"job": "x" * 5000, **auth(tokens, user)}).encode(),
                headers=headers,
            )
            for user in ("alice", "bob", "root")  # each user within their own budget
        ]

    # 4 users' worth from one address: 4,096 bytes a second, bursts of 8,192
    with TestClient(make_app(settings, clock=clock), client=("192.0.2.7", 4000)) as client:
        answers = posted(client)
    assert [a.status_code for a in answers] == [200, 429, 429]
    assert "bytes of bodies a second from 192.0.2.7" in answers[1].json()["error_message"]
    with TestClient(make_app(settings, clock=clock), client=("127.0.0.1", 4000)) as client:
        assert [a.status_code for a in posted(client)] == [200, 200, 200], "a proxy's address"
