"""The old names of modules that moved out of ``spooler.lab``, kept for what users' trees
import by them: apparatus headers and labscript profiles written by earlier versions, shots
compiled before an upgrade (a connection table names its devices' modules).

An old name is the moved module itself (one state: one set of faults, one profile), loaded
when it is first asked for; the lab's package installs :class:`OldNames` on import, so that
nothing of the virtual lab is imported by the lab boundary unless an old name is used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "OldNames", "install"]

MOVED = {
    "spooler.lab.camera": "spooler.virtual.camera",
    "spooler.lab.fermions": "spooler.virtual.fermions",
    "spooler.lab.machines": "spooler.virtual.machines",
    "spooler.lab.physics": "spooler.virtual.physics",
    "spooler.lab.profile": "spooler.core.labprofile",
    "spooler.lab.spins": "spooler.virtual.spins",
}


class OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name of :data:`MOVED` and loads it as the module it moved to."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])  # its own name and spec are kept

    def exec_module(self, module: ModuleType) -> None:
        pass  # the moved module ran already


def install() -> None:
    """Put :class:`OldNames` on the import path (once)."""
    if not any(isinstance(finder, OldNames) for finder in sys.meta_path):
        sys.meta_path.append(OldNames())
