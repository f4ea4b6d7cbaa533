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
    connected: list[object] = []  # the process tree's instance, once the suite connected
    tree = types.SimpleNamespace(instance=lambda: connected[0] if connected else None)
    monkeypatch.delitem(sys.modules, "labscript_utils.ls_zprocess", raising=False)
    assert not locklease.shorten(), "the suite not imported: nothing to shorten"
    suite = types.SimpleNamespace(ProcessTree=tree)
    monkeypatch.setitem(sys.modules, "labscript_utils.ls_zprocess", suite)
    assert not locklease.shorten(), "before the suite connects, its own lease is set later"
    assert client.timeout_s == 45.0
    connected.append(types.SimpleNamespace(zlock_client=client))
    assert locklease.shorten()
    assert client.timeout_s == locklease.LEASE_S < 20.0, "shorter than an isolated shot's time"
