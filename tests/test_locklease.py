"""The result daemon's short zlock lease (result/locklease.py), on a stand-in of zprocess's
process tree (the real one connects to a zlock server)."""

from __future__ import annotations

import sys
import types

import pytest

from result import locklease


class _Client:
    def __init__(self) -> None:
        self.timeout_s = 45.0  # labscript_utils.ls_zprocess.ZLOCK_DEFAULT_TIMEOUT

    def set_default_timeout(self, timeout: float) -> None:
        self.timeout_s = timeout


def test_the_lease_is_shortened_once_the_suite_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _Client()
    tree = types.SimpleNamespace(instance=lambda: types.SimpleNamespace(zlock_client=client))
    monkeypatch.setitem(
        sys.modules, "zprocess.process_tree", types.SimpleNamespace(ProcessTree=tree)
    )
    monkeypatch.delitem(sys.modules, "labscript_utils.ls_zprocess", raising=False)
    assert not locklease.shorten(), "before the suite connects, its own lease is set later"
    assert client.timeout_s == 45.0
    monkeypatch.setitem(sys.modules, "labscript_utils.ls_zprocess", types.SimpleNamespace())
    assert locklease.shorten()
    assert client.timeout_s == locklease.LEASE_S < 20.0, "shorter than an isolated shot's time"
