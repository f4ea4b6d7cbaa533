"""The old names of moved modules that users' trees import (apparatus headers and labscript
profiles written before the layers, shots compiled before an upgrade) are the moved modules."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

ALIASES = {  # written out (not spooler.lab.oldnames.MOVED): what earlier versions had
    "spooler.lab.profile": "spooler.core.labprofile",
    "spooler.lab.camera": "spooler.virtual.camera",
    "spooler.lab.machines": "spooler.virtual.machines",
    "spooler.lab.physics": "spooler.virtual.physics",
    "spooler.lab.spins": "spooler.virtual.spins",
    "spooler.lab.fermions": "spooler.virtual.fermions",
}


@pytest.mark.parametrize(("old", "new"), sorted(ALIASES.items()))
def test_an_old_name_is_the_moved_module_itself(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


def run_fresh(*lines: str) -> None:
    """*lines* run in a fresh Python process, which must exit 0."""
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_what_old_headers_and_profiles_import_still_imports_in_a_fresh_process() -> None:
    run_fresh(
        "from spooler.lab.physics import LargeSpin",
        "from spooler.lab.machines import SpinMachine, FermionMachine, dummy_devices",
        "from spooler.lab.camera import raise_injected_fault",
        "from spooler.lab.profile import activate",
        "import spooler.lab.spins, spooler.virtual.spins",
        "assert spooler.lab.spins is spooler.virtual.spins",
        "assert spooler.lab.spins.__name__ == 'spooler.virtual.spins'",
    )


def test_the_lab_boundary_imports_nothing_of_the_virtual_lab_unless_an_old_name_is_used() -> None:
    run_fresh(
        "import sys",
        "import spooler.lab, spooler.lab.runmanager, spooler.lab.blacs",
        "assert not [m for m in sys.modules if m.startswith('spooler.virtual')], sys.modules",
        "from spooler.lab.camera import raise_injected_fault",
        "assert 'spooler.virtual.camera' in sys.modules",
    )


def test_a_name_that_never_was_is_not_found() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("spooler.lab.nothing")
