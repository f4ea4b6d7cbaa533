"""Where a virtual lab keeps its files under its root, and the environment its processes run in.

Everything of the lab lies in ``ROOT/lab``: its labscript profile, the programs' logs, the
record of its processes, the globals file, the faults on demand and BLACS's ready file. Every
process of the lab runs with the profile's ``sitecustomize`` first on its ``PYTHONPATH`` (so
the suite uses the lab's profile, never the user's own ``~/labscript-suite``) and Qt offscreen.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from spooler.core.labprofile import site_folder
from spooler.virtual.camera import FAULTS_ENV

__all__ = ["LabLayout", "lab_environment", "process_environment"]


@dataclass
class LabLayout:
    """The paths of the virtual lab under *root*."""

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
    def blacs_settings(self) -> Path:
        """BLACS's own settings file (named after the host, as BLACS names it)."""
        return self.profile / "app_saved_configs" / "blacs" / f"{socket.gethostname()}_BLACS.h5"

    @property
    def connection_table_py(self) -> Path:
        return self.profile / "userlib" / "labscriptlib" / "connection_table.py"

    @property
    def connection_table_h5(self) -> Path:
        return self.profile / "shared" / "Experiments" / "labspool" / "connection_table.h5"

    @property
    def runmanager_ini(self) -> Path:
        return self.profile / "app_saved_configs" / "runmanager" / "runmanager.ini"


def lab_environment(root: Path) -> dict[str, str]:
    """The environment in which a process works with the lab under *root* (its profile)."""
    return process_environment(LabLayout(root.expanduser().absolute()))


def process_environment(layout: LabLayout) -> dict[str, str]:
    """This process's environment, set up for the lab of *layout*."""
    env = dict(os.environ)
    site = str(site_folder(layout.profile))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [site, env.get("PYTHONPATH")]))
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.pop("READTHEDOCS", None)
    # the faults on demand (spooler.virtual.camera), for BLACS and its device workers
    env[FAULTS_ENV] = str(layout.faults_file)
    return env
