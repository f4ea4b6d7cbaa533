"""``labspool validate --compile``: compile rendered experiments with the real labscript compiler.

The compilation runs in a child process with a throw-away labscript profile (see
:mod:`spooler.core.labprofile`) and a zlock server of its own, which is stopped by its process id
afterwards; the user's own profile is never read or written. Needs the ``lab`` extra.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from spooler.core.labprofile import Ports, activate, start_zlock, stop_process, write_profile

__all__ = ["compile_experiments"]


def compile_experiments(sources: dict[str, str], *, shots: int = 1) -> dict[str, str]:
    """Compile each experiment's source; returns the failures (name -> labscript's message)."""
    with tempfile.TemporaryDirectory(prefix="labspool-compile-") as tmp:
        root = Path(tmp)
        profile = root / "profile"
        ports = Ports.free()
        write_profile(profile, ports)
        scripts = []
        for name, source in sources.items():
            script = root / f"{name}.py"
            script.write_text(source, encoding="utf-8")
            scripts.append(str(script))
        zlock = start_zlock(profile, ports.zlock)
        try:
            worker = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "spooler.lab.compilecheck",
                    str(profile),
                    str(root / "shots"),
                    *scripts,
                ],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=root,
                env=_child_env(),
            )
        finally:
            stop_process(zlock)
        try:
            results: dict[str, str | None] = json.loads(worker.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"(compiler)": worker.stderr.strip() or f"exit code {worker.returncode}"}
        return {name: message for name, message in results.items() if message is not None}


def _child_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.pop("READTHEDOCS", None)
    return env


def compile_one(script: Path, shot: Path, globals_files: list[Path]) -> str | None:
    """Compile *script* into the shot file *shot* with the real labscript compiler, as
    runmanager's batch compiler does; returns labscript's message on failure. Runs in a
    process whose labscript profile is the sandbox's (see :func:`_worker`)."""
    import labscript
    import runmanager

    try:
        runmanager.make_run_file_from_globals_files(
            str(script), [str(g) for g in globals_files], str(shot)
        )
        labscript.labscript_init(str(shot), labscript_file=str(script))
        namespace = {"__name__": "__main__", "__file__": str(script)}
        exec(compile(script.read_text(encoding="utf-8"), str(script), "exec"), namespace)
    except Exception:
        return "".join(traceback.format_exc(limit=-3))
    finally:
        labscript.labscript_cleanup()
    return None


def _worker(profile: Path, output: Path, scripts: list[Path]) -> dict[str, str | None]:
    activate(profile)
    import runmanager

    output.mkdir(parents=True, exist_ok=True)
    globals_file = output / "globals.h5"
    runmanager.new_globals_file(str(globals_file))
    runmanager.new_group(str(globals_file), "labspool")
    return {
        script.stem: compile_one(script, output / f"{script.stem}.h5", [globals_file])
        for script in scripts
    }


if __name__ == "__main__":
    profile_arg, output_arg, *script_args = sys.argv[1:]
    outcome = _worker(Path(profile_arg), Path(output_arg), [Path(s) for s in script_args])
    print(json.dumps(outcome))
