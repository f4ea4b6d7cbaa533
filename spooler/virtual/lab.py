"""The embedded virtual lab: the genuine runmanager and BLACS, offscreen, on dummy devices.

``labspool lab up DIR`` builds a labscript profile of its own under ``DIR/lab`` (labconfig
with free ports, shared drive, globals file, the connection table compiled from the
backend's apparatus header: ``--backend`` singlequdit, multiqudit, fermions or nali, each a
virtual machine with exact physics), installs and enables labspool's BLACS plugin, starts a zlock
and (if none runs) a zlog server, runmanager and BLACS with ``QT_QPA_PLATFORM=offscreen``,
waits until both answer, and writes ``DIR/labspool.yaml`` pointing at them. Every process it
starts is recorded in ``DIR/lab/processes.json``; ``labspool lab down DIR`` stops them and
their children by process id. The user's own ``~/labscript-suite`` is never touched: every
child process imports a ``sitecustomize`` that points the suite at the lab's profile.

Limits of the suite that shape this: zlog's port is fixed (7340), so one zlog serves every
lab on a machine (labspool starts it only when none answers, and stops only its own);
runmanager reads its globals files and active groups only at start-up (from the autoload
file written here), not through its remote API.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spooler.core.errors import LabspoolError
from spooler.core.fsutil import write_atomic
from spooler.core.labprofile import Ports, activate, site_folder, write_profile
from spooler.core.scaffold import write_tree
from spooler.core.settings import GlobalNames, load_settings
from spooler.lab.plugin import install_plugin, labconfig_lines
from spooler.virtual.camera import FAULTS_ENV
from spooler.virtual.spins import STATES_MAX

__all__ = [
    "LabProcesses",
    "descendants",
    "lab_down",
    "lab_environment",
    "lab_up",
    "process_alive",
    "start_role",
    "stop_role",
]

GROUP = "labspool"
APPARATUS_GROUP = "apparatus"  # the lab's own globals, which the apparatus header reads
LOAD_TIME_S = 0.010
ZLOG_PORT = 7340  # hard-coded in labscript_utils.ls_zprocess
START_TIMEOUT_S = 180.0


@dataclass
class LabLayout:
    root: Path

    @property
    def lab(self) -> Path:
        return self.root / "lab"

    @property
    def profile(self) -> Path:
        return self.lab / "profile"

    @property
    def logs(self) -> Path:
        return self.lab / "logs"

    @property
    def processes(self) -> Path:
        return self.lab / "processes.json"

    @property
    def globals_file(self) -> Path:
        return self.lab / "globals.h5"

    @property
    def faults_file(self) -> Path:
        """Faults on demand (``labspool lab fault``; read by the virtual camera)."""
        return self.lab / "faults.json"

    @property
    def ready_file(self) -> Path:
        return self.lab / "blacs.ready"

    @property
    def connection_table_py(self) -> Path:
        return self.profile / "userlib" / "labscriptlib" / "connection_table.py"

    @property
    def connection_table_h5(self) -> Path:
        return self.profile / "shared" / "Experiments" / "labspool" / "connection_table.h5"

    @property
    def runmanager_ini(self) -> Path:
        return self.profile / "app_saved_configs" / "runmanager" / "runmanager.ini"


class LabProcesses:
    """The processes a lab started, by role, kept in ``processes.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pids: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}

    def add(self, role: str, pid: int) -> None:
        self.pids[role] = pid
        write_atomic(self.path, json.dumps(self.pids, indent=1).encode())

    def alive(self) -> dict[str, int]:
        return {role: pid for role, pid in self.pids.items() if process_alive(pid)}


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _processes_mentioning(text: str) -> list[int]:
    """Processes whose command line names *text* (servers the suite spawned for this lab)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace"
                ):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _terminate(pids: list[int], timeout_s: float = 20.0) -> list[int]:
    """SIGTERM, wait, SIGKILL what is left; returns the pids that were running."""
    running = [pid for pid in dict.fromkeys(pids) if process_alive(pid)]
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for pid in running:
        while process_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)  # no event to wait on for a process that is not our child
        _kill(pid)
    return running


def _kill(pid: int) -> None:
    """SIGKILL *pid* (if it still runs) and wait until it is gone."""
    if process_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while process_alive(pid):
            _reap(pid)
            time.sleep(0.01)  # no event to wait on for a process that is not our child
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def lab_environment(root: Path) -> dict[str, str]:
    """The environment in which a process works with the lab under *root* (its profile)."""
    return _env(LabLayout(root.expanduser().absolute()))


def _env(layout: LabLayout) -> dict[str, str]:
    env = dict(os.environ)
    site = str(site_folder(layout.profile))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [site, env.get("PYTHONPATH")]))
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.pop("READTHEDOCS", None)
    # the faults on demand (spooler.virtual.camera), for BLACS and its device workers
    env[FAULTS_ENV] = str(layout.faults_file)
    return env


def _spawn(layout: LabLayout, role: str, argv: list[str]) -> subprocess.Popen[bytes]:
    log = (layout.logs / f"{role}.log").open("ab")
    try:
        return subprocess.Popen(
            argv,
            cwd=layout.lab,
            env=_env(layout),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def lab_up(
    root: Path,
    *,
    backend: str = "singlequdit",
    look_ahead_jobs: int | None = None,
    look_ahead_shots: int | None = None,
    load_time_s: float = LOAD_TIME_S,
) -> Path:
    """Build and start the virtual lab under *root*; returns the labspool configuration path.

    *load_time_s*: the apparatus' loading stage (the runmanager global ``load_time_s``), so
    that a shot lasts about that long, as on a real machine whose trap loads for seconds.
    *look_ahead_jobs*, *look_ahead_shots*: the configuration's (None: labspool's defaults)."""
    layout = LabLayout(root.expanduser().absolute())
    if layout.processes.exists() and LabProcesses(layout.processes).alive():
        raise LabspoolError(f"the lab in {layout.root} is up already (labspool lab down first)")
    ports = Ports.free()
    runmanager_port = ports.runmanager
    config = _write_config(layout, backend, runmanager_port, look_ahead_jobs, look_ahead_shots)
    settings = load_settings(config)
    for folder in (layout.lab, layout.logs):
        folder.mkdir(parents=True, exist_ok=True)
    extra = labconfig_lines(settings.folders.addresses, ready_file=layout.ready_file)
    extra["runmanager"] = {"autoload_config_file": str(layout.runmanager_ini)}
    extra["paths"] = {
        "connection_table_h5": str(layout.connection_table_h5),
        "connection_table_py": str(layout.connection_table_py),
    }
    names = settings.lab.globals
    extra["labspool"].update(
        job_id_global=names.job_id,
        experiment_global=names.experiment_name,
        shot_global=names.shot,
        attempt_global=names.attempt,
        control_folder=str(settings.folders.control),
    )
    write_profile(layout.profile, ports, extra=extra)
    layout.ready_file.unlink(missing_ok=True)
    install_plugin()
    processes = LabProcesses(layout.processes)
    try:
        zlock = _spawn(
            layout,
            "zlock",
            [
                sys.executable,
                "-m",
                "zprocess.zlock",
                "--port",
                str(ports.zlock),
                "--bind-address",
                "127.0.0.1",
                "--allow-insecure",
                "--silent",
            ],
        )
        processes.add("zlock", zlock.pid)
        if not _port_answers(ZLOG_PORT):
            zlog = _spawn(
                layout,
                "zlog",
                [
                    sys.executable,
                    "-m",
                    "zprocess.zlog",
                    "--port",
                    str(ZLOG_PORT),
                    "--bind-address",
                    "127.0.0.1",
                    "--allow-insecure",
                    "--server-log-dir",
                    str(layout.logs),
                ],
            )
            processes.add("zlog", zlog.pid)
        setup = subprocess.run(
            [sys.executable, "-m", "spooler.virtual.lab", str(layout.root), repr(load_time_s)],
            cwd=layout.lab,
            env=_env(layout),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if setup.returncode != 0:
            raise LabspoolError(f"preparing the virtual lab failed:\n{setup.stderr[-3000:]}")
        started = {role: _start(layout, processes, role) for role in ("runmanager", "blacs")}
        _wait_until_up(layout, runmanager_port, started)
    except BaseException:
        lab_down(layout.root)
        raise
    return config


def _start(layout: LabLayout, processes: LabProcesses, role: str) -> subprocess.Popen[bytes]:
    process = _spawn(layout, role, [sys.executable, "-m", role])
    processes.add(role, process.pid)
    return process


def stop_role(root: Path, role: str, *, kill: bool = False) -> list[int]:
    """Stop one of the lab's programs ("runmanager" or "blacs") and its children.

    With *kill*, the program is killed (SIGKILL, as in a crash) and its children are left
    to exit by themselves for a few seconds (BLACS's device workers do) before they are
    stopped too."""
    layout = LabLayout(root.expanduser().absolute())
    pid = LabProcesses(layout.processes).pids[role]
    children = descendants(pid)
    if not kill:
        return _terminate([*children, pid])
    if not process_alive(pid):
        return _terminate(children)
    _kill(pid)
    deadline = time.monotonic() + 10.0
    while any(process_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid, *_terminate(children)]


def start_role(root: Path, role: str) -> int:
    """Start one of the lab's programs again (after :func:`stop_role`); returns its pid once up."""
    layout = LabLayout(root.expanduser().absolute())
    processes = LabProcesses(layout.processes)
    if role in processes.alive():
        raise LabspoolError(f"{role} of the lab in {layout.root} runs already")
    if role == "blacs":
        layout.ready_file.unlink(missing_ok=True)
    process = _start(layout, processes, role)
    settings = load_settings(layout.root / "labspool.yaml")
    if role == "runmanager":
        _wait_until_up(layout, settings.lab.runmanager.port, {role: process}, blacs=False)
    else:
        _wait_until_up(layout, settings.lab.runmanager.port, {role: process})
    return process.pid


def _write_config(
    layout: LabLayout,
    backend: str,
    runmanager_port: int,
    look_ahead_jobs: int | None,
    look_ahead_shots: int | None,
) -> Path:
    config = layout.root / "labspool.yaml"
    if config.exists():
        config.unlink()  # a lab's configuration is the lab's; it is rewritten with new ports
    look_ahead = "".join(
        f"  {key}: {value}\n"
        for key, value in (
            ("look_ahead_jobs", look_ahead_jobs),
            ("look_ahead_shots", look_ahead_shots),
        )
        if value is not None
    )
    lab_section = f"""lab:
  kind: runmanager            # the virtual lab's runmanager (labspool lab up)
{look_ahead}  retry_interval_s: 1.0
  retry_interval_max_s: 10.0
  health_interval_s: 1.0      # the virtual machine is looked at every second
  stalled_after_s: 10.0       # its shots take a second at most: lost ones are seen soon
  labscript_profile: lab/profile
  runmanager:
    host: localhost
    port: {runmanager_port}
    timeout_s: 15.0
"""
    # the virtual machines evolve their atoms exactly: a job larger than that is refused
    config = write_tree(layout.root, backend, lab_section=lab_section)
    text = config.read_text(encoding="utf-8")
    text = re.sub(
        r"(?m)^  exact_states_max: null", f"  exact_states_max: {STATES_MAX}", text, count=1
    )
    write_atomic(config, text.encode())
    return config


def _port_answers(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_until_up(
    layout: LabLayout,
    runmanager_port: int,
    started: dict[str, subprocess.Popen[bytes]],
    *,
    blacs: bool = True,
) -> None:
    if "labscript_utils" not in sys.modules:
        activate(layout.profile)
    from runmanager.remote import Client

    client = Client(host="localhost", port=runmanager_port, timeout=1.0)
    names = load_settings(layout.root / "labspool.yaml").lab.globals
    deadline = time.monotonic() + START_TIMEOUT_S
    runmanager_up = False
    while True:
        for role, process in started.items():
            if process.poll() is not None:
                log = (layout.logs / f"{role}.log").read_text(errors="replace")[-3000:]
                raise LabspoolError(
                    f"{role} exited with code {process.returncode} while starting:\n{log}"
                )
        if not runmanager_up:
            # Up means: answering, and its globals files opened (it answers earlier).
            with contextlib.suppress(Exception):  # no answer within 1 s: ask again
                runmanager_up = names.shot in client.get_globals(raw=True)
        if runmanager_up and (not blacs or layout.ready_file.exists()):
            return
        if time.monotonic() > deadline:
            raise LabspoolError(f"the virtual lab did not come up within {START_TIMEOUT_S:.0f} s")
        if runmanager_up:
            time.sleep(0.1)  # BLACS signals readiness by a file its plugin writes


def lab_down(root: Path) -> list[int]:
    """Stop every process the lab in *root* started, with their children; returns their pids."""
    layout = LabLayout(root.expanduser().absolute())
    processes = LabProcesses(layout.processes)
    order = ["blacs", "runmanager", "zlog", "zlock"]
    pids: list[int] = []
    for role in sorted(processes.pids, key=lambda r: order.index(r) if r in order else -1):
        pid = processes.pids[role]
        pids.extend(descendants(pid))
        pids.append(pid)
    # Servers the suite may have spawned for this lab on its own (they name the profile).
    pids.extend(_processes_mentioning(str(layout.profile)))
    stopped = _terminate(pids)
    if layout.processes.exists():
        layout.processes.unlink()
    return stopped


# -- run in a child process with the lab's profile (python -m spooler.virtual.lab ROOT) -----


def _prepare(root: Path, load_time_s: float) -> None:
    """Globals file, runmanager's autoload file and the compiled connection table."""
    layout = LabLayout(root)
    settings = load_settings(root / "labspool.yaml")
    import runmanager
    from labscript_utils.labconfig import save_appconfig

    from spooler.lab.compilecheck import compile_one

    names: GlobalNames = settings.lab.globals
    globals_file = str(layout.globals_file)
    if layout.globals_file.exists():
        layout.globals_file.unlink()
    runmanager.new_globals_file(globals_file)
    runmanager.new_group(globals_file, GROUP)
    initial: dict[str, str] = {
        names.job_id: "''",
        names.experiment_name: "''",
        names.shot: "range(1)",
        names.seed: "None",
        names.attempt: "1",
    }
    for name, value in initial.items():
        runmanager.new_global(globals_file, GROUP, name)
        runmanager.set_value(globals_file, GROUP, name, value)
    runmanager.set_expansion(globals_file, GROUP, names.shot, "outer")
    runmanager.new_group(globals_file, APPARATUS_GROUP)
    runmanager.new_global(globals_file, APPARATUS_GROUP, "load_time_s")
    runmanager.set_value(globals_file, APPARATUS_GROUP, "load_time_s", repr(load_time_s))

    header = settings.apparatus.header.read_text(encoding="utf-8")
    layout.connection_table_py.parent.mkdir(parents=True, exist_ok=True)
    layout.connection_table_py.write_text(header + "\napparatus.finish()\n", encoding="utf-8")
    layout.connection_table_h5.parent.mkdir(parents=True, exist_ok=True)
    failure = compile_one(
        layout.connection_table_py, layout.connection_table_h5, [layout.globals_file]
    )
    if failure is not None:
        raise SystemExit(f"the connection table does not compile:\n{failure}")

    state: dict[str, Any] = {
        "h5_files_open": [globals_file],
        "active_groups": [(globals_file, GROUP), (globals_file, APPARATUS_GROUP)],
        "groups_open": [],
        "current_labscript_file": str(layout.connection_table_py),
        "shot_output_folder": str(settings.folders.shots),
        "is_using_default_shot_output_folder": False,
        "send_to_runviewer": False,
        "send_to_blacs": True,
        "shuffle": False,
    }
    layout.runmanager_ini.parent.mkdir(parents=True, exist_ok=True)
    save_appconfig(str(layout.runmanager_ini), {"runmanager_state": state})


if __name__ == "__main__":
    _prepare(Path(sys.argv[1]), float(sys.argv[2]))
