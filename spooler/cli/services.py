"""systemd units for labspool, rendered from ``systemd/labspool.service.in``.

One template serves the daemons: the spooler (``labspool run``), the result daemon
(``labspool-result run``) and the HTTP gateway (``labspool web``), each ``Type=notify`` with a
watchdog and restarted on failure; and ``labspool prune``, a oneshot that its timer
(``systemd/labspool-prune.timer.in``) starts once a day. The network is closed to
everything but localhost and the addresses given (runmanager's host, resolved when the units
are written), which is what ``IPAddressDeny=any`` needs to be told: the gateway listens on
``gateway.listen`` for a reverse proxy on this machine that ends TLS (see the README); to let
clients reach it directly, give their networks with ``--allow``.
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

from spooler.core.resources import systemd_template, systemd_timer_template
from spooler.core.settings import Settings

__all__ = ["DAEMONS", "ROLES", "TIMERS", "render_timer", "render_unit", "timer_name", "unit_name"]

DAEMONS = {
    "spooler": ("labspool", "run", "job files to experiment runs on the labscript machine"),
    "result": ("labspool-result", "run", "finished shots to analysed, archived shots and results"),
    "gateway": ("labspool", "web", "the HTTP gateway of the qiskit-cold-atom client"),
}
TIMERS = {
    "prune": ("labspool", "prune", "the files of ended jobs past the retention section"),
}
ROLES = {**DAEMONS, **TIMERS}

# A daemon says READY=1 and WATCHDOG=1 on the notify socket (spooler/core/notify.py).
_DAEMON = """Type=notify
NotifyAccess=main
Restart=on-failure
RestartSec=5s
WatchdogSec=60s
TimeoutStopSec=60s
KillMode=mixed"""
_DAEMON_INSTALL = "[Install]\nWantedBy=multi-user.target"
# A oneshot its timer starts: below the daemons in CPU and I/O, never killed for its length.
_ONESHOT = """Type=oneshot
Nice=10
IOSchedulingClass=idle
TimeoutStartSec=infinity"""


def unit_name(role: str) -> str:
    return f"labspool-{role}.service"


def timer_name(role: str) -> str:
    return f"labspool-{role}.timer"


def render_timer(role: str, settings: Settings) -> str:
    """The timer that starts the oneshot *role* (one of :data:`TIMERS`)."""
    if role not in TIMERS:
        raise ValueError(f"{role!r} has no timer")
    text = systemd_timer_template().read_text(encoding="utf-8")
    return text.replace("@CONFIG@", str(settings.path))


def render_unit(
    role: str,
    settings: Settings,
    *,
    bin_dir: Path,
    user: str,
    group: str | None = None,
    allow: tuple[str, ...] = (),
) -> str:
    program, command, description = ROLES[role]
    folders = settings.folders
    profile = settings.lab.labscript_profile or _home(user) / "labscript-suite"
    addresses = list(allow)
    host = settings.lab.runmanager.host
    if settings.lab.kind == "runmanager" and host not in ("localhost", "127.0.0.1", "::1"):
        addresses.append(socket.gethostbyname(host))
    fields = {
        "ROLE": role,
        "DESCRIPTION": description,
        "RUNNING": _ONESHOT if role in TIMERS else _DAEMON,
        "INSTALL": "" if role in TIMERS else _DAEMON_INSTALL,
        "EXEC": str(bin_dir / program),
        "COMMAND": command,
        "CONFIG": str(settings.path),
        "TREE": str(settings.path.parent),
        "SDS": str(folders.sds),
        "PROFILE": str(profile),
        "USER": user,
        "GROUP": group or user,
        "ALLOW": " ".join(addresses),
        # folders configured outside the tree (shots on a data disk, say) are writable too
        "ELSEWHERE": " ".join(
            f"-{path}"
            for path in sorted({p for p in folders.as_dict().values() if p != folders.sds})
            if not path.is_relative_to(settings.path.parent)
        ),
    }
    text = systemd_template().read_text(encoding="utf-8")
    for key, value in fields.items():
        text = text.replace(f"@{key}@", value)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())  # empty fields


def _home(user: str) -> Path:
    """The user's home (the labscript profile lives there); the usual place if not yet made."""
    try:
        return Path(f"~{user}").expanduser()
    except RuntimeError:
        return Path("/home") / user


def default_user() -> str:
    return getpass.getuser()
