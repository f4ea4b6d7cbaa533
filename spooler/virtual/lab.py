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

The parts: :mod:`.layout` (where the lab's files are, its processes' environment),
:mod:`.config` (its ``labspool.yaml``), :mod:`.prepare` (runmanager's globals and the
connection table, in a child process), :mod:`.roles` (runmanager and BLACS started, waited
for, stopped) and :mod:`.processes` (processes by id).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from spooler.core.errors import LabspoolError
from spooler.core.labprofile import Ports, write_profile
from spooler.core.settings import load_settings
from spooler.lab.plugin import install_plugin, labconfig_lines
from spooler.virtual.config import write_config
from spooler.virtual.layout import LabLayout, lab_environment, process_environment
from spooler.virtual.processes import (
    LabProcesses,
    descendants,
    process_alive,
    processes_mentioning,
    terminate,
)
from spooler.virtual.roles import spawn, start_role, start_until_up, stop_role

__all__ = [
    "LabLayout",
    "LabProcesses",
    "descendants",
    "lab_down",
    "lab_environment",
    "lab_up",
    "process_alive",
    "start_role",
    "stop_role",
]

LOAD_TIME_S = 0.010
ZLOG_PORT = 7340  # hard-coded in labscript_utils.ls_zprocess


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
    config = write_config(layout, backend, runmanager_port, look_ahead_jobs, look_ahead_shots)
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
        zlock = spawn(
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
            zlog = spawn(
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
            [sys.executable, "-m", "spooler.virtual.prepare", str(layout.root), repr(load_time_s)],
            cwd=layout.lab,
            env=process_environment(layout),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if setup.returncode != 0:
            raise LabspoolError(f"preparing the virtual lab failed:\n{setup.stderr[-3000:]}")
        start_until_up(layout, processes, ["runmanager", "blacs"], runmanager_port)
    except BaseException:
        lab_down(layout.root)
        raise
    return config


def _port_answers(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


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
    pids.extend(processes_mentioning(str(layout.profile)))
    stopped = terminate(pids)
    if layout.processes.exists():
        layout.processes.unlink()
    return stopped
