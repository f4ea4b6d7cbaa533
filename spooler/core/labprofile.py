"""A sandboxed labscript profile, so that labspool never touches the user's ``~/labscript-suite``.

The labscript suite finds its profile from the user's passwd home, not from ``$HOME``; the
two module attributes of ``labscript_profile`` that decide it are pointed at the sandbox
by :func:`activate`, which must run before ``labscript_utils`` is first imported (so it
runs in a fresh child process). The zlock server the suite insists on is started here,
on a port of the sandbox's own, and stopped by its process id.
"""

from __future__ import annotations

import configparser
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

__all__ = [
    "Ports",
    "activate",
    "activate_if_set",
    "free_port",
    "labconfig_path",
    "site_folder",
    "start_zlock",
    "stop_process",
    "write_profile",
]


@dataclass(frozen=True)
class Ports:
    BLACS: int
    lyse: int
    runmanager: int
    runviewer: int
    zlock: int
    zlog: int
    zprocess_remote: int

    @classmethod
    def free(cls) -> Ports:
        taken: list[int] = []
        for _ in fields(cls):
            taken.append(free_port(frozenset(taken)))
        return cls(*taken)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(taken: frozenset[int] = frozenset()) -> int:
    """A port nothing listens on, below the kernel's ephemeral range: a port the kernel hands
    out for outgoing connections could be taken between this choice and the server's bind
    (seen: runmanager failing with "Address already in use")."""
    high = _ephemeral_low() - 1
    candidates = [p for p in range(20000, high + 1) if p not in taken]
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise OSError(f"no free port between 20000 and {high}")


def labconfig_path(profile: Path) -> Path:
    return profile / "labconfig" / f"{socket.gethostname()}.ini"


def write_profile(
    profile: Path,
    ports: Ports,
    *,
    apparatus: str = "labspool",
    extra: dict[str, dict[str, str]] | None = None,
) -> Path:
    """Write a complete labscript profile under *profile*; returns its labconfig path.

    *extra* adds sections or keys to the labconfig (BLACS plugins, paths, ...)."""
    shared = profile / "shared"
    for sub in (
        "labconfig",
        "logs",
        "userlib/pythonlib",
        "userlib/labscriptlib",
        "app_saved_configs",
    ):
        (profile / sub).mkdir(parents=True, exist_ok=True)
    shared.mkdir(parents=True, exist_ok=True)
    sections: dict[str, dict[str, str]] = {
        "DEFAULT": {
            "apparatus_name": apparatus,
            "shared_drive": str(shared),
            "experiment_shot_storage": "%(shared_drive)s/Experiments/%(apparatus_name)s",
            "userlib": f"{profile}/userlib",
            "pythonlib": "%(userlib)s/pythonlib",
            "labscriptlib": "%(userlib)s/labscriptlib",
            "analysislib": "%(userlib)s/analysislib",
            "app_saved_configs": f"{profile}/app_saved_configs",
            "user_devices": "user_devices",
        },
        "paths": {
            "connection_table_h5": "%(experiment_shot_storage)s/connection_table.h5",
            "connection_table_py": "%(labscriptlib)s/connection_table.py",
        },
        "servers": {"zlock": "localhost", "runmanager": "localhost"},
        "ports": {name: str(port) for name, port in asdict(ports).items()},
        "timeouts": {"communication_timeout": "60"},
        "programs": {"text_editor": "true", "text_editor_arguments": "{file}"},
        "labscript": {"save_hg_info": "False", "save_git_info": "False"},
        "security": {"allow_insecure": "True"},
    }
    for section, values in (extra or {}).items():
        sections.setdefault(section, {}).update(values)
    config = configparser.ConfigParser(interpolation=None)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    config.read_dict(sections)
    path = labconfig_path(profile)
    with path.open("w", encoding="utf-8") as out:
        config.write(out)
    return path


def activate(profile: Path) -> None:
    """Point the labscript suite at *profile*, in this process and in every Python process it
    starts; call before ``labscript_utils`` is imported.

    The children matter: the suite starts servers of its own (a zlock server, when a ping to
    it takes more than 50 ms), and one started without the profile makes and uses
    ``~/labscript-suite``. So *profile*'s site folder, whose ``sitecustomize`` calls this
    function, is put first on ``PYTHONPATH``."""
    if "labscript_utils" in sys.modules:
        raise RuntimeError("activate() must run before labscript_utils is imported")
    import labscript_profile

    labscript_profile.LABSCRIPT_SUITE_PROFILE = profile
    labscript_profile.default_labconfig_path = lambda: labconfig_path(profile)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    site = str(site_folder(profile))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if site not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([site, *paths])


def activate_if_set(profile: Path | None) -> None:
    """:func:`activate` *profile* (a configuration's ``lab.labscript_profile``), unless it is
    None (the user's own profile) or this process imported the suite already."""
    if profile is not None and "labscript_utils" not in sys.modules:
        activate(profile)


def site_folder(profile: Path) -> Path:
    """*profile*'s folder with a ``sitecustomize.py`` that activates *profile* (written once)."""
    site = profile / "labspool-site"
    text = (
        "# Written by labspool: points the labscript suite at this profile.\n"
        "from pathlib import Path\n\n"
        "from spooler.core.labprofile import activate\n\n"
        f"activate(Path({str(profile)!r}))\n"
    )
    target = site / "sitecustomize.py"
    try:
        current = target.read_text(encoding="utf-8")
    except OSError:
        current = None
    if current != text:
        site.mkdir(parents=True, exist_ok=True)
        tmp = site / f".sitecustomize.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    return site


def start_zlock(profile: Path, port: int, *, timeout_s: float = 20.0) -> subprocess.Popen[bytes]:
    """Start a zlock server for the sandbox and wait until it answers."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zprocess.zlock",
            "--port",
            str(port),
            "--bind-address",
            "127.0.0.1",
            "--allow-insecure",
            "--silent",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    from zprocess.zlock import ZLockClient

    client = ZLockClient("localhost", port)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                client.ping(timeout=0.5)
                return process
            except Exception:  # zmq raises its own timeout classes
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the zlock server on port {port} did not start") from None
    except BaseException:
        stop_process(process)
        raise


def stop_process(process: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after *timeout_s*; waits so that no zombie is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
