"""Installing labspool's BLACS plugin (``labspool lab install-plugin``).

BLACS loads plugins only from its own ``blacs/plugins/<name>/`` folder and only when the
labconfig enables them; this copies the plugin there and writes (or prints) the lines.
"""

from __future__ import annotations

import configparser
import importlib.util
import shutil
from pathlib import Path

from spooler.core.errors import LabspoolError

__all__ = ["PLUGIN_NAME", "configure_labconfig", "install_plugin", "labconfig_lines"]

PLUGIN_NAME = "labspool_addresses"
SOURCE = Path(__file__).parent / "blacs_plugin" / PLUGIN_NAME


def blacs_plugins_dir() -> Path:
    spec = importlib.util.find_spec("blacs")  # found, not imported: importing BLACS needs Qt
    if spec is None or spec.origin is None:
        raise LabspoolError("BLACS is not installed here (pip install 'labspool[lab]')")
    return Path(spec.origin).parent / "plugins"


def install_plugin() -> Path:
    """Copy the plugin into BLACS's plugin folder (replacing an older copy); returns it."""
    target = blacs_plugins_dir() / PLUGIN_NAME
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def labconfig_lines(
    address_folder: Path, control_folder: Path | None = None, ready_file: Path | None = None
) -> dict[str, dict[str, str]]:
    section = {"address_folder": str(address_folder)}
    if control_folder is not None:
        section["control_folder"] = str(control_folder)
    if ready_file is not None:
        section["ready_file"] = str(ready_file)
    return {"BLACS/plugins": {PLUGIN_NAME: "True"}, "labspool": section}


def configure_labconfig(
    labconfig: Path,
    address_folder: Path,
    control_folder: Path | None = None,
    ready_file: Path | None = None,
) -> None:
    """Add the plugin's lines to an existing labconfig file, keeping everything else."""
    config = configparser.ConfigParser(interpolation=None)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    if not config.read(labconfig):
        raise LabspoolError(f"cannot read the labconfig {labconfig}")
    for section, values in labconfig_lines(address_folder, control_folder, ready_file).items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in values.items():
            config.set(section, key, value)
    with labconfig.open("w") as out:
        config.write(out)
