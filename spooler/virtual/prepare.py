"""Preparing a virtual lab's runmanager: its globals file, its autoload file, the connection table.

This runs in a child process with the lab's profile (``python -m spooler.virtual.prepare
ROOT LOAD_TIME_S``, started by :func:`spooler.virtual.lab.lab_up`), as the suite reads its
profile when it is first imported. runmanager reads its globals files and active groups only
at start-up, from the autoload file written here, not through its remote API.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from spooler.core.settings import GlobalNames, load_settings
from spooler.virtual.layout import LabLayout

__all__ = ["APPARATUS_GROUP", "GROUP", "prepare"]

GROUP = "labspool"
APPARATUS_GROUP = "apparatus"  # the lab's own globals, which the apparatus header reads


def prepare(root: Path, load_time_s: float) -> None:
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
    prepare(Path(sys.argv[1]), float(sys.argv[2]))
