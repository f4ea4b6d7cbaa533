"""The control channel between the spooler and BLACS's labspool plugin, without BLACS.

The plugin's :class:`ControlServer` runs its real thread over a real folder; only BLACS's
queue is a list here (the edge). The lab tests run it inside BLACS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from spooler.errors import LabUnavailable
from spooler.lab.blacs import BlacsControl
from spooler.lab.blacs_plugin.labspool_addresses.control import ControlServer


class ListQueue:
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.current: str | None = None
        self.aborts = 0

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
