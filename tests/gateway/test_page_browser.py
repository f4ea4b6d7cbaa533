"""The live page in headless Chromium against ``labspool web`` (a process of its own): what
it shows while a job runs, that it follows the job without a reload, a job's own page with
its result and picture, the users' separation, and that a hostile name stays text.

The job's changes are made in the store through the job model, as the daemons make them;
tests/gateway/test_gateway_lab.py watches a job the virtual lab runs.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spooler.core.health import Reason, encode_reasons
from spooler.core.items import Quarantine
from spooler.core.jobs import Jobs
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobStore
from tests.conftest import add_users, record_job
from tests.webtools import Chromium, gateway, needs_chromium

pytestmark = [needs_chromium, pytest.mark.slow]

HOSTILE = '<img src=x onerror="window.pwned=1">'


@pytest.fixture
def tokens(tree: Settings) -> dict[str, str]:
    return add_users(tree, {"alice": {}, "bob": {}, "root": {"operator": True}})


@pytest.fixture
def url(tree: Settings, tokens: dict[str, str]) -> Iterator[str]:
    with gateway(tree.path) as base:
        yield base


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    with Chromium(tmp_path / "chromium") as chromium:
        yield chromium


def signed_in(url: str, tokens: dict[str, str], user: str, path: str = "/") -> str:
    return f"{url}{path}#user={user}&token={tokens[user]}"


def picture_png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4, 3), dpi=50)
    axes.bar(["0", "1", "2"], [5, 3, 2])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def test_the_page_follows_a_running_job_and_shows_its_result(
    tree: Settings, tokens: dict[str, str], url: str, browser: Chromium, tmp_path: Path
) -> None:
    # a job done before, whose shots give the estimates a model
    record_job(tree, "past", "bob", JobState.QUEUED, JobState.RUNNING)
    jobs = Jobs(tree.folders)
    try:
        for made in (1, 10):
            with jobs.change() as tx:
                tx.set_counts("past", shots_made=made, shots_done=made)
        with jobs.change() as tx:
            tx.transition("past", JobState.DONE)
    finally:
        jobs.close()
    Quarantine(tree.folders.quarantine, "result daemon").put(
        None, f"not an HDF5 file {HOSTILE}", name="shot7.h5", job_id="past"
    )
    record_job(tree, "rabi", "alice", JobState.QUEUED, JobState.RUNNING)
    record_job(tree, "ramsey", "bob", JobState.QUEUED)
    record_job(tree, "odd", "alice", JobState.QUEUED, source_name=HOSTILE)
    jobs = Jobs(tree.folders)
    try:
        with jobs.change() as tx:
            tx.set_counts("rabi", shots_expected=10, shots_done=3)

        # the operator's queue while rabi runs
        browser.open(signed_in(url, tokens, "root"))
        browser.wait_for("document.querySelector('tr[data-job=rabi]')", "rabi's row")
        assert "token" not in browser.evaluate("location.href")  # out of the address bar
        row = "tr[data-job=rabi]"
        assert browser.text(f"{row} .state .badge") == "RUNNING"
        assert browser.text(f"{row} .state .note") == "Got your json."  # its detail's last
        assert browser.text(f"{row} .shots") == "3/10"
        assert browser.evaluate(f"document.querySelector('{row} progress').value") == 3
        assert browser.text("tr[data-job=ramsey] .position") == "1"
        assert browser.text("tr[data-job=ramsey] .user") == "bob"
        assert re.fullmatch(
            r"\d\d:\d\d:\d\d \((now|in \d+ s|\d+ s ago)\)", browser.text(f"{row} .finish")
        )
        assert re.fullmatch(r"\d\d:\d\d:\d\d \(.*\)", browser.text("tr[data-job=ramsey] .start"))
        assert browser.text("tr[data-job=past] .state") == "DONE"  # finished, below
        quarantined = browser.text("#quarantine li")
        assert quarantined.startswith("shot7.h5") and quarantined.endswith(HOSTILE)
        assert browser.text("tr[data-job=odd] .position") == "2"
        assert browser.text("#overview-title") == "Queue"
        browser.screenshot(tmp_path / "queue.png")

        # shots are made: the page follows without a reload
        with jobs.change() as tx:
            tx.set_counts("rabi", shots_done=7)
        browser.wait_for(f"document.querySelector('{row} .shots').textContent == '7/10'", "7/10")
        refreshes = int(browser.evaluate("document.body.dataset.refreshes"))

        # rabi ends DONE, with its result and picture; ramsey moves up and then runs
        (tree.folders.sds / "rabi").mkdir(parents=True)
        (tree.folders.sds / "rabi" / "rabi.png").write_bytes(picture_png())
        result = {
            "success": True,
            "results": [
                {"header": {"name": "e0"}, "shots": 5, "data": {"counts": {"1": 3, "0": 2}}},
                {"header": {"name": "e1"}, "shots": 5, "data": {"counts": {"2": 5}}},
            ],
        }
        (tree.folders.results / "rabi.json").write_text(json.dumps(result))
        with jobs.change() as tx:
            tx.set_counts("rabi", shots_done=10)
            tx.transition("rabi", JobState.DONE)
            tx.transition("ramsey", JobState.RUNNING)
        browser.wait_for(f"document.querySelector('{row}').dataset.status == 'DONE'", "DONE")
        assert int(browser.evaluate("document.body.dataset.refreshes")) > refreshes
        assert browser.text("tr[data-job=ramsey] .state .badge") == "RUNNING"
        assert browser.text("tr[data-job=odd] .position") == "1"
    finally:
        jobs.close()

    # the job's own page, from its link
    browser.follow("tr[data-job=rabi] a")
    browser.wait_for("document.getElementById('job-picture').naturalWidth > 0", "the picture")
    assert browser.evaluate("location.pathname") == "/jobs/rabi"
    assert browser.text("[data-fact=state]") == "DONE"
    assert browser.text("[data-fact=user]") == "alice"
    assert browser.text("tr[data-experiment=e0] .counts") == "1: 3, 0: 2"
    assert browser.text("tr[data-experiment=e1] .counts") == "2: 5"
    statuses = browser.evaluate(
        "[...document.querySelectorAll('#job-history li')].map(li => li.dataset.status)"
    )
    assert statuses == ["INITIALIZING", "QUEUED", "RUNNING", "DONE"]
    shot = browser.screenshot(tmp_path / "job.png")
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
    assert browser.errors == []

    # a hostile name is text, never markup
    browser.open(f"{url}/jobs/odd")
    browser.wait_for("document.querySelector('[data-fact=\"submitted as\"]')", "odd's name")
    assert browser.text('[data-fact="submitted as"]') == HOSTILE
    injected = "window.pwned !== undefined || document.querySelector('main img[src=x]')"
    assert not browser.evaluate(injected)


def test_a_user_sees_only_their_own_jobs_and_a_wrong_token_signs_out(
    tree: Settings, tokens: dict[str, str], url: str, browser: Chromium
) -> None:
    record_job(tree, "mine", "bob", JobState.QUEUED)
    record_job(tree, "theirs", "alice", JobState.QUEUED)
    browser.open(signed_in(url, tokens, "bob"))
    browser.wait_for("document.querySelector('tr[data-job=mine]')", "bob's job")
    assert browser.text("#overview-title") == "Your jobs"
    assert browser.evaluate("document.querySelectorAll('#jobs tbody tr').length") == 1
    browser.open(f"{url}/jobs/theirs")  # signed in still (the tab's session storage)
    browser.wait_for("document.getElementById('message').textContent", "a refusal")
    assert browser.text("#message") == "no job theirs"
    assert browser.evaluate("document.getElementById('job').hidden")

    browser.open(f"{url}/#user=bob&token={secrets.token_urlsafe(32)}")
    browser.wait_for("!document.getElementById('signin').hidden", "the sign-in form")
    assert "Not signed in" in browser.text("#message")
    assert browser.evaluate("sessionStorage.length") == 0
    # signing in through the form
    browser.evaluate(
        f"""document.getElementById('signin-user').value = 'bob';
        document.getElementById('signin-token').value = {json.dumps(tokens["bob"])};
        document.getElementById('signin').requestSubmit();"""
    )
    browser.wait_for("document.querySelector('tr[data-job=mine]')", "bob's job after signing in")
    assert browser.text("#who") == "bob"


def test_a_banner_says_why_the_machine_is_not_operational_and_goes_when_it_is(
    tree: Settings, tokens: dict[str, str], url: str, browser: Chromium
) -> None:
    """A user sees the banner too, with each reason (they say why the jobs wait), as text."""
    now = time.time()
    reason = Reason("device:ni_card", f"DAQmx error -200279 {HOSTILE}", now - 90)

    def record(operational: bool) -> None:
        store = JobStore(tree.folders.database)
        try:
            with store.transaction() as tx:
                reasons = [] if operational else [reason]
                tx.set_health(operational=operational, reasons=encode_reasons(reasons), since=now)
        finally:
            store.close()

    record_job(tree, "mine", "bob", JobState.QUEUED)
    record(operational=True)
    browser.open(signed_in(url, tokens, "bob"))
    browser.wait_for("document.body.dataset.machine == 'operational'", "the machine's state")
    assert browser.evaluate("document.getElementById('machine').hidden")
    assert browser.evaluate("getComputedStyle(document.getElementById('machine')).display") == (
        "none"
    )

    record(operational=False)  # the page follows without a reload
    browser.wait_for("!document.getElementById('machine').hidden", "the banner")
    banner = browser.text("#machine")
    assert re.fullmatch(
        r"The machine is not operational since \d\d:\d\d: device:ni_card: DAQmx error "
        r"-200279 " + re.escape(HOSTILE),
        banner,
    ), banner
    injected = "window.pwned !== undefined || document.querySelector('#machine *') !== null"
    assert browser.evaluate(injected) is False  # text only, no element made of it
    browser.open(f"{url}/jobs/mine")  # on a job's page too
    browser.wait_for("!document.getElementById('machine').hidden", "the banner on the job")
    assert browser.text("#machine") == banner

    record(operational=True)
    browser.wait_for("document.getElementById('machine').hidden", "the banner gone")
    assert browser.errors == []


def test_a_long_queue_shows_its_first_jobs_how_many_and_the_next_ones(
    tree: Settings, tokens: dict[str, str], url: str, browser: Chromium
) -> None:
    """An operator's page holds the first 100 jobs that wait or run, says how many there are
    (per state and per user) and how many more, and links to the next ones; a user counts
    only their own."""
    from spooler.gateway.page import ACTIVE_SHOWN

    queued = ACTIVE_SHOWN + 5
    store = JobStore(tree.folders.database)
    try:
        with store.transaction() as tx:  # one transaction: a long queue, made quickly
            for n in range(queued):
                user = ("alice", "bob", "carol")[n % 3]
                name = f"file_q{n:03d}-{user}.json"
                job = tx.add_job(
                    job_id=f"q{n:03d}",
                    backend=tree.backend,
                    source_name=HOSTILE if n == queued - 1 else name,
                    claim_name=name,
                    submitter=user,
                )
                tx.set_counts(job.job_id, experiments=1, shots_requested=10)
                tx.transition(job.job_id, JobState.QUEUED)
    finally:
        store.close()
    rows = "document.querySelectorAll('#jobs tbody tr[data-job]').length"
    browser.open(signed_in(url, tokens, "root"))
    browser.wait_for("document.querySelector('tr[data-more=later]')", "the jobs beyond the page")
    assert browser.evaluate(rows) == ACTIVE_SHOWN
    assert browser.text("#jobs-count") == f"{queued} waiting or running: {queued} queued"
    assert browser.evaluate("document.getElementById('jobs-count').dataset.total") == "105"
    assert browser.text("li[data-user=alice]") == "alice: 35 (35 queued)"
    later = "tr[data-more=later]"
    assert browser.text(later) == "and 5 more waiting or running; the next ones"
    # the row after the last shown one
    assert (
        browser.evaluate(f"document.querySelector('{later}').previousElementSibling.dataset.job")
        == "q099"
    )
    browser.follow(f"{later} a")
    browser.wait_for("document.querySelector('tr[data-job=q104]')", "the next page")
    assert browser.evaluate("location.search") == "?offset=100"
    assert browser.evaluate(rows) == 5
    assert browser.text("tr[data-job=q104] .position") == "105"
    assert browser.text("tr[data-more=earlier]") == "100 before these; the ones before"
    assert browser.evaluate("document.querySelector('tr[data-more=later]')") is None
    assert browser.evaluate("document.querySelector('main img[src=x]')") is None

    browser.open(signed_in(url, tokens, "bob", "/"))
    browser.wait_for("document.querySelector('tr[data-job=q001]')", "bob's jobs")
    assert browser.text("#jobs-count") == "35 waiting or running: 35 queued"
    assert browser.evaluate("document.getElementById('jobs-by-user').hidden")
    assert browser.evaluate(rows) == 35 and browser.text("tr[data-job=q004] .position") == "5"
    assert browser.errors == []
