"""The result daemon's zlock lease: short, so that a killed daemon does not block its shot.

Every HDF5 file the labscript suite opens (``labscript_utils.h5_lock``) is locked on the
zlock server under its path, and the lock is leased for ``ZLOCK_DEFAULT_TIMEOUT`` (45 s in
``labscript_utils.ls_zprocess``): a process killed while it has a file open keeps it locked
until then. A shot on which the result daemon died is handled next in a process of its own
(:mod:`result.isolated`) that is given ``ISOLATED_TIMEOUT_S`` (20 s: the daemon waits for it
and must ping systemd's watchdog within 30 s); waiting out a 45 s lease there would count
as the shot hanging. The daemon's own files are open for milliseconds (a shot's globals, its
analysis on a private copy, the archived copy's row of lyse's DataFrame), and no other
process of the lab opens them meanwhile, so its lease is :data:`LEASE_S`. The suite sets its
lease when it first connects to zlock; :func:`shorten` is called before each shot.
"""

from __future__ import annotations

import sys

__all__ = ["LEASE_S", "shorten"]

LEASE_S = 10.0


def shorten() -> bool:
    """Lease this process's zlock locks for :data:`LEASE_S` (once the suite has connected
    to zlock); returns whether it did."""
    suite = sys.modules.get("labscript_utils.ls_zprocess")
    tree = getattr(suite, "ProcessTree", None)  # the suite's own, whose locks h5_lock takes
    instance = None if tree is None else tree.instance()
    if instance is None:
        return False  # not connected yet: its first connection sets the suite's lease
    instance.zlock_client.set_default_timeout(LEASE_S)
    return True
