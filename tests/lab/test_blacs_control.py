"""The control channel between the spooler and BLACS's labspool plugin, without BLACS.

The plugin's :class:`ControlServer` runs its real thread over a real folder; only BLACS's
queue is a list here (the edge). The lab tests run it inside BLACS.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from spooler.core.errors import LabUnavailable
from spooler.core.health import BlacsReport
from spooler.lab.blacs import BlacsControl
from spooler.lab.blacs_plugin.labspool_addresses.control import (
    ControlServer,
    QueueSnapshot,
    TabState,
    plain_message,
)

# a tab's error message as BLACS writes it (tab_base_classes.py), around a worker's traceback
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "<string>", line 7, in spin_clouds\n'
    "    raise RuntimeError(message)\n"
    "RuntimeError: camera overheated <injected> & stopped"
)
BLACS_ERROR = (
    "Exception in worker - Mon Nov 23, 10:00:00 :<br />"
    "<FONT COLOR='#ff0000'>"
    + TRACEBACK.replace("&", "&amp;")
    .replace("<", "&lt;")
    .replace(">", "&gt;")
    .replace(" ", "&nbsp;")
    .replace("\n", "<br />")
    + "</FONT><br />"
)


class FakeTab:
    """A BLACS device tab: a restart takes *restart_polls* looks before it is idle again
    (*stays_broken*: it comes back in error)."""

    def __init__(self, name: str, restart_polls: int = 2, stays_broken: bool = False) -> None:
        self.name = name
        self.state = "idle"
        self.error = ""
        self.restart_polls = restart_polls
        self.stays_broken = stays_broken
        self.restarts = 0
        self._coming_back: int | None = None

    def fail(self, html: str = BLACS_ERROR) -> None:
        self.state, self.error = "fatal error", html

    def look(self) -> TabState:
        if self._coming_back is not None:
            self._coming_back -= 1
            if self._coming_back <= 0:
                self._coming_back = None
                if self.stays_broken:
                    self.fail("Fatal exception in main process:<br />OSError: no camera")
                else:
                    self.state, self.error = "idle", ""
        return TabState(self.name, self.state, self.error)

    def restart(self) -> None:
        self.restarts += 1
        self._coming_back = self.restart_polls


class ListQueue:
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.current: str | None = None
        self.current_since: float | None = None
        self.aborts = 0
        self.is_paused = False
        self.status_text = "Idle"
        self.devices = {n: FakeTab(n) for n in ("pseudoclock", "camera")}
        self.lock = threading.Lock()  # the control thread and a recovery's both look
        self.manager_alive = True

    def queued(self) -> list[str]:
        return list(self.paths)

    def remove(self, paths: Iterable[str]) -> list[str]:
        wanted = set(paths)
        removed = [p for p in self.paths if p in wanted]
        self.paths = [p for p in self.paths if p not in wanted]
        return removed

    def running(self) -> str | None:
        return self.current

    def abort(self) -> bool:
        self.aborts += 1
        return self.current is not None

    def running_since(self) -> float | None:
        return self.current_since

    def snapshot(self) -> QueueSnapshot:
        return QueueSnapshot(
            self.is_paused, self.status_text, list(self.paths), self.tabs(), self.manager_alive
        )

    def paused(self) -> bool:
        return self.is_paused

    def set_paused(self, paused: bool) -> None:
        self.is_paused = paused

    def tabs(self) -> list[TabState]:
        with self.lock:
            return [tab.look() for tab in self.devices.values()]

    def restart(self, name: str) -> None:
        self.devices[name].restart()

    def camera_fails(self) -> None:
        """What BLACS does when the camera raises at the end of a shot."""
        self.devices["camera"].fail()
        self.paths.insert(0, str(Path(self.paths[0]).parent / "failed.h5"))
        self.is_paused = True
        self.status_text = "Error in transtion to manual\nQueue Paused"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return tmp_path / "shots"


@pytest.fixture
def blacs(shots: Path) -> ListQueue:
    return ListQueue(
        [
            str(shots / job / exp / f"{n}.h5")
            for job in ("a", "b")
            for exp in ("e0",)
            for n in range(3)
        ]
    )


@pytest.fixture
def server(tmp_path: Path, blacs: ListQueue) -> Iterator[ControlServer]:
    s = ControlServer(str(tmp_path / "control"), blacs, interval_s=0.005)
    s.start()
    yield s
    s.stop()


def test_hello_answers_while_the_plugin_runs(tmp_path: Path, server: ControlServer) -> None:
    client = BlacsControl(tmp_path / "control")
    assert client.unavailable_reason() is None
    assert client.request("hello")["queued"] == 6


def test_no_plugin_no_answer_and_the_request_is_taken_back(tmp_path: Path) -> None:
    client = BlacsControl(tmp_path / "control", timeout_s=0.2)
    reason = client.unavailable_reason()
    assert reason is not None and "BLACS did not answer within 0.2 s" in reason
    assert os.listdir(tmp_path / "control" / "requests") == [], "not carried out later"


def test_withdraw_removes_the_jobs_queued_shots_and_refuses_late_ones(
    tmp_path: Path, shots: Path, blacs: ListQueue, server: ControlServer
) -> None:
    client = BlacsControl(tmp_path / "control")
    withdrawal = client.withdraw([shots / "a" / "e0"], abort=False)
    assert withdrawal.removed == 3 and withdrawal.aborted is None
    assert all("/b/" in p for p in blacs.paths)
    assert server.refuses(str(shots / "a" / "e0" / "9.h5"))
    assert not server.refuses(str(shots / "b" / "e0" / "9.h5"))
    blacs.paths.append(str(shots / "a" / "e0" / "late.h5"))  # slipped in another way
    server.poll()
    assert blacs.paths == [str(shots / "b" / "e0" / f"{n}.h5") for n in range(3)]
    assert blacs.aborts == 0


def test_abort_stops_the_running_shot_only_if_it_is_the_jobs(
    tmp_path: Path, shots: Path, blacs: ListQueue, server: ControlServer
) -> None:
    client = BlacsControl(tmp_path / "control")
    blacs.current = str(shots / "b" / "e0" / "x.h5")
    assert client.withdraw([shots / "a" / "e0"], abort=True).aborted is None
    assert blacs.aborts == 0
    blacs.current = str(shots / "a" / "e0" / "x.h5")
    assert client.withdraw([shots / "a" / "e0"], abort=True).aborted == blacs.current
    assert blacs.aborts == 1


def test_a_broken_request_gets_an_error_and_the_plugin_goes_on(
    tmp_path: Path, server: ControlServer
) -> None:
    requests = tmp_path / "control" / "requests"
    (requests / "junk.json").write_bytes(b"\xff not json")
    client = BlacsControl(tmp_path / "control")
    with pytest.raises(LabUnavailable, match="unknown action"):
        client.request("explode")
    assert client.unavailable_reason() is None
    assert not (requests / "junk.json").exists()


def test_a_restarted_plugin_still_refuses_and_sweeps_the_restored_queue(
    tmp_path: Path, shots: Path, blacs: ListQueue, server: ControlServer
) -> None:
    client = BlacsControl(tmp_path / "control")
    assert client.withdraw([shots / "a" / "e0"], abort=False).removed == 3
    server.stop()  # BLACS closes, saving its queue; it comes back with it restored
    restored = ListQueue([str(shots / "a" / "e0" / "1.h5"), str(shots / "b" / "e0" / "0.h5")])
    again = ControlServer(str(tmp_path / "control"), restored)
    assert again.refuses(str(shots / "a" / "e0" / "7.h5"))
    again.poll()
    assert restored.paths == [str(shots / "b" / "e0" / "0.h5")]


def test_withdrawn_folders_are_forgotten_when_their_time_is_up(
    tmp_path: Path, shots: Path, blacs: ListQueue
) -> None:
    now = [1000.0]
    server = ControlServer(str(tmp_path / "control"), blacs, linger_s=60, clock=lambda: now[0])
    (tmp_path / "control" / "requests" / "w.json").write_text(
        '{"action": "withdraw", "folders": ["%s"]}' % (shots / "a" / "e0")
    )
    server.poll()
    assert server.refuses(str(shots / "a" / "e0" / "9.h5"))
    now[0] += 61
    server.poll()
    assert not server.refuses(str(shots / "a" / "e0" / "9.h5"))
    later = ControlServer(str(tmp_path / "control"), blacs, clock=lambda: now[0])
    assert later.lingering == {}


def test_an_unreadable_memory_refuses_nothing_and_the_plugin_starts(
    tmp_path: Path, blacs: ListQueue
) -> None:
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "withdrawn.json").write_text("{not json")
    server = ControlServer(str(tmp_path / "control"), blacs)
    assert server.lingering == {}


class _LogServerGone(logging.Handler):
    """BLACS's zlog handler when the log server does not answer: it raises."""

    def handle(self, record: logging.LogRecord) -> bool:
        raise TimeoutError("Could not connect to server: timed out")


def test_a_log_server_that_times_out_does_not_end_the_control_thread(
    tmp_path: Path, shots: Path, blacs: ListQueue, server: ControlServer
) -> None:
    plugin_log = logging.getLogger("BLACS.plugin.labspool_addresses.control")
    handler = _LogServerGone()
    plugin_log.addHandler(handler)
    try:
        client = BlacsControl(tmp_path / "control", timeout_s=5)
        assert client.withdraw([shots / "a" / "e0"], abort=False).removed == 3
        assert client.request("hello")["queued"] == 3  # the thread still answers
    finally:
        plugin_log.removeHandler(handler)


# -- the report, the pause, recovery --------------------------------------------------------


def test_hello_is_the_full_report_blacs_report_parses(
    tmp_path: Path, shots: Path, blacs: ListQueue, server: ControlServer
) -> None:
    blacs.current, blacs.current_since = str(shots / "b" / "e0" / "x.h5"), 1234.5
    report = BlacsControl(tmp_path / "control").report()
    assert report == BlacsReport(
        instance=server.instance,
        paused=False,
        status="Idle",
        queued=6,
        queued_folders={str(shots / "a" / "e0"): 3, str(shots / "b" / "e0"): 3},
        head=str(shots / "a" / "e0" / "0.h5"),
        running=str(shots / "b" / "e0" / "x.h5"),
        running_since=1234.5,
        devices_in_error=(),
    )
    again = ControlServer(str(tmp_path / "control2"), blacs)
    assert again.instance != server.instance, "a BLACS started again is another instance"


def test_a_paused_queue_with_a_device_in_error_is_reported_as_text(
    tmp_path: Path, shots: Path, blacs: ListQueue, server: ControlServer
) -> None:
    blacs.camera_fails()
    report = BlacsControl(tmp_path / "control").report()
    assert report.paused and report.status == "Error in transtion to manual\nQueue Paused"
    assert report.head == str(shots / "a" / "e0" / "failed.h5") and report.queued == 7
    assert report.running is None and report.running_since is None
    (camera,) = report.devices_in_error
    assert camera.name == "camera"
    assert camera.message.splitlines() == [  # the traceback's frames are left out
        "Exception in worker - Mon Nov 23, 10:00:00 :",
        "RuntimeError: camera overheated <injected> & stopped",
    ]
    blacs.devices["pseudoclock"].state = "fatal error"  # in error without a message
    names = {
        e.name: e.message for e in BlacsControl(tmp_path / "control").report().devices_in_error
    }
    assert names == {"camera": camera.message, "pseudoclock": "fatal error"}


def test_a_long_message_keeps_its_beginning_and_its_exception_line() -> None:
    frames = "".join(f'  File "x.py", line {n}, in f{n}<br />' for n in range(100))
    html = f"Fatal exception in main process:<br />{frames}ValueError: the last word"
    text = plain_message(html)
    assert len(text) <= 500
    assert text.startswith('Fatal exception in main process:\nFile "x.py", line 0')
    assert text.endswith("\n…\nValueError: the last word")
    assert plain_message("") == "" and plain_message("a &amp; b") == "a & b"
    # the worker's exception, then the tab's own (what BLACS showed for the camera)
    main = (
        "Fatal exception in main process - Sat Dec 05, 21:18:06 :<br /> <FONT>"
        "Traceback&nbsp;(most&nbsp;recent&nbsp;call&nbsp;last):<br />"
        "&nbsp;&nbsp;File&nbsp;&quot;tab_base_classes.py&quot;,&nbsp;line&nbsp;9<br />"
        "&nbsp;&nbsp;&nbsp;&nbsp;raise&nbsp;Exception(...)<br />"
        "Exception:&nbsp;Could&nbsp;not&nbsp;transition&nbsp;to&nbsp;manual.</FONT><br />"
    )
    assert plain_message(BLACS_ERROR + main).splitlines() == [
        "Exception in worker - Mon Nov 23, 10:00:00 :",
        "RuntimeError: camera overheated <injected> & stopped",
        "Fatal exception in main process - Sat Dec 05, 21:18:06 :",
        "Exception: Could not transition to manual.",
    ]


def test_recover_restarts_the_tabs_in_error_waits_for_them_and_unpauses(
    tmp_path: Path, blacs: ListQueue, server: ControlServer
) -> None:
    blacs.camera_fails()
    answer = BlacsControl(tmp_path / "control").recover(timeout_s=10)
    assert answer["restarted"] == ["camera"] and answer["still_in_error"] == []
    assert answer["unpaused"] is True and answer["was_paused"] is True
    assert blacs.devices["camera"].restarts == 1 and blacs.devices["pseudoclock"].restarts == 0
    assert not blacs.is_paused
    report = BlacsControl(tmp_path / "control").report()
    assert not report.paused and report.devices_in_error == ()
    again = BlacsControl(tmp_path / "control").recover(timeout_s=10)
    assert again == {
        "ok": True,
        "id": again["id"],
        "restarted": [],
        "still_in_error": [],
        "unpaused": False,
        "was_paused": False,
        "queue_manager_stopped": False,
    }


def test_a_queue_paused_without_a_device_in_error_is_just_unpaused(
    tmp_path: Path, blacs: ListQueue, server: ControlServer
) -> None:
    blacs.is_paused, blacs.status_text = True, "Error in queue manager\nQueue paused"
    answer = BlacsControl(tmp_path / "control").recover(timeout_s=10)
    assert answer["restarted"] == [] and answer["unpaused"] is True
    assert not blacs.is_paused


def test_a_tab_that_comes_back_in_error_leaves_the_queue_paused(
    tmp_path: Path, blacs: ListQueue
) -> None:
    blacs.camera_fails()
    blacs.devices["camera"].stays_broken = True
    server = ControlServer(str(tmp_path / "control"), blacs, recover_poll_s=0.01)
    answer = server.recover(timeout_s=0.5)
    assert answer["restarted"] == ["camera"] and answer["unpaused"] is False
    assert answer["still_in_error"] == [
        {"name": "camera", "message": "Fatal exception in main process:\nOSError: no camera"}
    ]
    assert blacs.is_paused


def test_hello_is_answered_while_a_recovery_waits_and_a_second_recover_shares_it(
    tmp_path: Path, blacs: ListQueue, server: ControlServer
) -> None:
    blacs.camera_fails()
    blacs.devices["camera"].restart_polls = 10**9  # it does not come back by itself
    answers: list[dict[str, object]] = []

    def recover() -> None:
        answers.append(BlacsControl(tmp_path / "control").recover(timeout_s=30))

    first, second = threading.Thread(target=recover), threading.Thread(target=recover)
    first.start()
    while blacs.devices["camera"].restarts == 0:
        time.sleep(0.005)
    second.start()
    started = time.monotonic()
    report = BlacsControl(tmp_path / "control", timeout_s=5).report()
    assert time.monotonic() - started < 2 and report.paused  # answered meanwhile
    blacs.devices["camera"].restart_polls = 0
    blacs.devices["camera"]._coming_back = 1  # now it comes back
    first.join(10)
    second.join(10)
    assert len(answers) == 2 and all(a["restarted"] == ["camera"] for a in answers)
    assert blacs.devices["camera"].restarts == 1, "the second request joined the first"
    assert not blacs.is_paused


def test_recover_with_a_bad_timeout_is_refused(tmp_path: Path, server: ControlServer) -> None:
    requests = tmp_path / "control" / "requests"
    (requests / "r.json").write_text('{"action": "recover", "timeout_s": "soon"}')
    server.poll()
    assert "not a number" in (tmp_path / "control" / "replies" / "r.json").read_text()


def test_the_pause_is_logged_once_with_its_status_and_devices_and_the_unpause_too(
    tmp_path: Path, blacs: ListQueue, caplog: pytest.LogCaptureFixture
) -> None:
    server = ControlServer(str(tmp_path / "control"), blacs)
    caplog.set_level(logging.INFO, logger="BLACS.plugin.labspool_addresses.control")
    server.watch_pause()
    blacs.camera_fails()
    server.watch_pause()  # seen; BLACS may not have set its status text yet
    assert caplog.records == []
    for _ in range(3):
        server.watch_pause()
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        "labspool control: BLACS's queue is paused (status: Error in transtion to manual / "
        "Queue Paused); devices in error: camera: RuntimeError: camera overheated "
        "<injected> & stopped"
    )
    blacs.is_paused = False
    server.watch_pause()
    server.watch_pause()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    assert caplog.records[1].getMessage() == "labspool control: BLACS's queue runs again"


def test_the_control_thread_watches_the_pause_by_itself(
    tmp_path: Path, blacs: ListQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="BLACS.plugin.labspool_addresses.control")
    server = ControlServer(
        str(tmp_path / "control"), blacs, interval_s=0.005, watch_interval_s=0.02
    )
    server.start()
    try:
        blacs.is_paused = True
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.stop()
    assert "BLACS's queue is paused (status: Idle); devices in error: none" in (
        caplog.records[0].getMessage()
    )


def test_a_dead_queue_manager_is_reported_and_not_restarted(shots: Path, tmp_path: Path) -> None:
    queue = ListQueue([str(shots / "j" / "experiment_0" / "a.h5")])
    server = ControlServer(str(tmp_path / "control"), queue)
    queue.manager_alive = False  # its error handling raised: BLACS holds its queue, runs none
    report = BlacsReport.parse(server.report())
    assert not report.manager_alive and report.queued == 1
    answer = server.recover(timeout_s=1)
    assert answer["queue_manager_stopped"] is True  # only a new BLACS is safe
    queue.manager_alive = True  # BLACS started again
    assert BlacsReport.parse(server.report()).manager_alive
    assert server.recover(timeout_s=1)["queue_manager_stopped"] is False
