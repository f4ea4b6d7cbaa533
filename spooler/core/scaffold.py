"""Writing a working labspool tree: ``labspool init`` and ``labspool lab up`` use it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from spooler.core.errors import ConfigError
from spooler.core.fsutil import write_atomic
from spooler.core.resources import config_dir
from spooler.core.settings import load_settings

__all__ = ["CONFIG_NAME", "write_tree"]

CONFIG_NAME = "labspool.yaml"
# the shipped analysis of each virtual machine's camera (the template names singlequdit's)
ROUTINES = {
    "singlequdit": "result.routines.singlequdit:count_atoms",
    "multiqudit": "result.routines.spins:count_clouds",
    "nali": "result.routines.spins:count_clouds",
    "fermions": "result.routines.fermions:read_tweezers",
}


def write_tree(root: Path, backend: str, *, lab_section: str | None = None) -> Path:
    """Write ``root/labspool.yaml`` (from the shipped template), the apparatus header and the
    folders; *lab_section* replaces the template's ``lab:`` block. Returns the config path."""
    root = root.expanduser().absolute()
    config_path = root / CONFIG_NAME
    if config_path.exists():
        raise ConfigError(f"{config_path} exists already; not overwritten")
    root.mkdir(parents=True, exist_ok=True)
    shipped = config_dir()
    header = shipped / "apparatus" / f"{backend}.py"
    if not header.exists():
        header = shipped / "apparatus" / "generic.py"
    (root / "apparatus").mkdir(exist_ok=True)
    shutil.copyfile(header, root / "apparatus" / "header.py")
    text = (shipped / CONFIG_NAME).read_text(encoding="utf-8")
    text = re.sub(r"(?m)^backend: \w+", f"backend: {backend}", text, count=1)
    if backend in ROUTINES:
        text = text.replace(ROUTINES["singlequdit"], ROUTINES[backend], 1)
    if lab_section is not None:
        text = re.sub(r"(?ms)^lab:\n.*?(?=^\S)", lab_section.rstrip("\n") + "\n\n", text, count=1)
    write_atomic(config_path, text.encode())
    load_settings(config_path).folders.create()  # also proves the file valid
    return config_path
