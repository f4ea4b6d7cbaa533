"""A workaround for the labscript suite: h5_lock leaks its kill lock when zlock fails.

``labscript_utils.h5_lock.File`` acquires zprocess's ``KillLock`` (which defers SIGTERM while
a file is open) and then the file's zlock lock, outside its ``try``: when zlock does not
answer (``TimeoutError: Could not connect to server``, seen on a loaded machine), the kill
lock is never released, and from then on every SIGTERM is "ignored: will be handled when
kill lock released", so systemd cannot stop the daemon. Between two shots the result daemon
has no HDF5 file open, so any acquisition still counted is such a leak: :func:`release_leaked`
gives them back (and a SIGTERM deferred meanwhile is then handled).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["release_leaked"]

log = logging.getLogger(__name__)


def release_leaked() -> int:
    """Release kill-lock acquisitions left by failed opens; call only with no file open."""
    module = sys.modules.get("labscript_utils.ls_zprocess")
    kill_lock = getattr(module, "kill_lock", None)
    if kill_lock is None:
        return 0
    leaked = int(getattr(kill_lock, "_n_acquires", 0))
    for _ in range(leaked):
        kill_lock.release()
    if leaked:
        log.warning("released %d kill lock(s) that h5_lock leaked when zlock failed", leaked)
    return leaked
