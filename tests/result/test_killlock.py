"""The workaround for h5_lock's leaked kill lock (result/killlock.py), on a stand-in of
zprocess's KillLock (the real one takes over the test process's SIGTERM)."""

from __future__ import annotations

import sys
import types

import pytest

from result.killlock import release_leaked


class _KillLock:
    def __init__(self, held: int) -> None:
        self._n_acquires = held

    def release(self) -> None:
        if not self._n_acquires:
            raise RuntimeError("Not held")
        self._n_acquires -= 1


def test_leaked_acquisitions_are_released(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = _KillLock(held=2)  # two opens that failed on zlock
    monkeypatch.setitem(
        sys.modules, "labscript_utils.ls_zprocess", types.SimpleNamespace(kill_lock=lock)
    )
    assert release_leaked() == 2
    assert lock._n_acquires == 0
    assert release_leaked() == 0


def test_nothing_to_release_without_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "labscript_utils.ls_zprocess", raising=False)
    assert release_leaked() == 0
