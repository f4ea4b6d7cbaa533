"""What the live page's overview costs as the queue grows: a user who has no job in a queue
of 3,000 pays what they pay in one of 30; an operator, and a user with a thousand jobs in
it, a bounded page (the first :data:`~spooler.gateway.page.ACTIVE_SHOWN` jobs, the counts
of the rest): as much behind 3,000 as behind 300, when the page is full either way.

Speed is measured as ratios within one run (the machine is shared), never as absolute
times. ``python -m tests.gateway.test_page_scale`` prints the figures (ms per poll).
Measured before the page was bounded (ms per poll; 30 / 3,000 queued): a user without jobs
0.95 / 25, one with a third of the queue 1.0 / 85, an operator 2.2 / 158.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobStore
from spooler.gateway import page
from spooler.gateway.page import LivePage
from spooler.gateway.users import User
from tests.conftest import init_tree
from tests.fakes import Clock

USERS = ("alice", "bob", "carol")  # the queue's owners
IDLE = "dave"  # a user with no job at all
OPERATOR = "root"
SMALL, MID, LARGE = 30, 300, 3000


def fill(settings: Settings, queued: int, clock: Clock) -> None:
    """*queued* jobs of :data:`USERS` in turn (10 shots each), behind one that runs, after
    five that were done (the estimates' model) and one that failed."""
    store = JobStore(settings.folders.database, clock=clock)
    backend = settings.backend
    try:
        for n in range(5):
            job_id = f"done{n}"
            with store.transaction() as tx:
                tx.add_job(job_id=job_id, backend=backend, source_name=job_id, claim_name=job_id)
                tx.set_counts(job_id, experiments=1, shots_requested=10)
                tx.transition(job_id, JobState.QUEUED)
                tx.transition(job_id, JobState.RUNNING)
                tx.set_counts(job_id, shots_expected=10)
            for made in range(1, 11):
                clock.now += 1.0
                with store.transaction() as tx:
                    tx.set_counts(job_id, shots_made=made, shots_done=made)
            clock.now += 1.0
            with store.transaction() as tx:
                tx.transition(job_id, JobState.DONE)
        with store.transaction() as tx:
            tx.add_job(job_id="lost", backend=backend, source_name="x", claim_name="x")
            tx.transition("lost", JobState.QUEUED)
            tx.transition("lost", JobState.RUNNING)
            tx.transition("lost", JobState.ERROR, error_message="the atoms were lost")
            tx.add_job(job_id="now", backend=backend, source_name="now", claim_name="now")
            tx.set_counts("now", experiments=1, shots_requested=10)
            tx.transition("now", JobState.QUEUED)
            tx.transition("now", JobState.RUNNING)
            tx.set_counts("now", shots_expected=10, shots_made=3, shots_done=3)
            for n in range(queued):
                user = USERS[n % len(USERS)]
                job_id = f"q{n:05d}"
                name = f"file_{job_id}-{user}.json"
                tx.add_job(
                    job_id=job_id,
                    backend=backend,
                    source_name=name,
                    claim_name=name,
                    submitter=user,
                )
                tx.set_counts(job_id, experiments=1, shots_requested=10)
                tx.transition(job_id, JobState.QUEUED)
    finally:
        store.close()


def caller(source: Mapping[str, Any]) -> User:
    name = str(source["username"])
    return User(name, name == OPERATOR, 10**6, 1 << 30, 1e9)


def request(user: str, query: str = "") -> Request:
    headers = [(b"authorization", f"Bearer {user}:token".encode())]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/ui/overview",
        "headers": headers,
        "query_string": query.removeprefix("?").encode(),
    }
    return Request(scope)


@dataclass
class Lab:
    """A tree with a queue, and its live page over a store of its own."""

    page: LivePage
    store: JobStore
    loop: asyncio.AbstractEventLoop

    def overview(self, user: str, query: str = "") -> dict[str, Any]:
        import json

        answer = self.loop.run_until_complete(self.page.overview(request(user, query)))
        assert answer.status_code == 200
        return json.loads(bytes(answer.body))  # type: ignore[no-any-return]

    def poll_s(self, user: str) -> float:
        started = time.perf_counter()
        self.loop.run_until_complete(self.page.overview(request(user)))
        return time.perf_counter() - started


def open_lab(root: Path, queued: int, loop: asyncio.AbstractEventLoop) -> Lab:
    settings = init_tree(root)
    clock = Clock()
    clock.now = time.time() - 3600
    fill(settings, queued, clock)
    store = JobStore(settings.folders.database)
    return Lab(LivePage(settings, store, caller, now=lambda: clock.now + 60), store, loop)


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Lab]]:
    loop = asyncio.new_event_loop()
    root = tmp_path_factory.mktemp("scale")
    made = {size: open_lab(root / str(size), size, loop) for size in (SMALL, MID, LARGE)}
    yield made
    for lab in made.values():
        lab.store.close()
    loop.close()


def poll_costs(labs: Mapping[int, Lab], users: tuple[str, ...], rounds: int) -> dict[Any, float]:
    """The least time of *rounds* polls, per (queue size, user); the polls interleaved, so
    that what else the machine does falls on all alike."""
    for lab in labs.values():  # warm: the first poll opens the files, fills the caches
        for user in users:
            lab.poll_s(user)
    times: dict[Any, list[float]] = {}
    for _ in range(rounds):
        for size, lab in labs.items():
            for user in users:
                times.setdefault((size, user), []).append(lab.poll_s(user))
    return {key: min(values) for key, values in times.items()}


def report(costs: Mapping[Any, float], say: Callable[[str], None] = print) -> None:
    for (size, user), seconds in sorted(costs.items()):
        say(f"{user:>6} with {size:>5} queued: {seconds * 1000:8.2f} ms per poll")


def test_what_a_poll_costs_does_not_grow_with_the_queue(labs: dict[int, Lab]) -> None:
    costs = poll_costs(labs, (IDLE, USERS[0], OPERATOR), rounds=9)
    report(costs)
    idle = costs[LARGE, IDLE] / costs[SMALL, IDLE]
    assert idle < 2.0, f"a user with no jobs pays {idle:.1f}x for {LARGE} queued vs {SMALL}"
    for user in (OPERATOR, USERS[0]):  # a full page either way: the queue is counted, not read
        full = costs[LARGE, user] / costs[MID, user]
        assert full < 2.0, f"{user} pays {full:.1f}x for {LARGE} queued vs {MID}"
    # an operator's page of 100 jobs against one of 31 (it was 72x: the whole queue)
    operator = costs[LARGE, OPERATOR] / costs[SMALL, OPERATOR]
    assert operator < 6.0, f"an operator pays {operator:.1f}x for {LARGE} queued vs {SMALL}"


def test_the_page_shows_the_first_jobs_and_counts_the_rest(labs: dict[int, Lab]) -> None:
    shown = labs[LARGE].overview(OPERATOR)
    active = [j for j in shown["jobs"] if j["status"] in ("QUEUED", "RUNNING")]
    assert len(active) == page.ACTIVE_SHOWN and active[0]["job_id"] == "now"
    assert [j["queue_position"] for j in active[1:]] == list(range(1, page.ACTIVE_SHOWN))
    assert shown["active"]["total"] == LARGE + 1
    assert shown["active"]["more"] == LARGE + 1 - page.ACTIVE_SHOWN
    assert all(j["estimated_start"] for j in active[1:])  # each estimated
    user = labs[LARGE].overview(USERS[2], "?offset=900")
    assert [j["queue_position"] for j in user["jobs"]][:2] == [2703, 2706]
    assert {j["user"] for j in user["jobs"]} == {USERS[2]} and user["active"]["more"] == 0


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        main_loop = asyncio.new_event_loop()
        sizes = (SMALL, MID, LARGE)
        made = {size: open_lab(Path(folder) / str(size), size, main_loop) for size in sizes}
        report(poll_costs(made, (IDLE, USERS[0], OPERATOR), rounds=9))
        for lab in made.values():
            lab.store.close()
        main_loop.close()
