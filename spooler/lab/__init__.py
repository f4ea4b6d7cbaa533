"""The lab boundary: the small interface through which the spooler runs experiments.

The real lab is runmanager (which compiles shots and sends them to BLACS); anything with
these methods can stand in for it. Errors are :class:`LabUnavailable` (wait and retry, the
job stays QUEUED) or :class:`LabRejected` (the job ends ERROR with the lab's message).
"""

from __future__ import annotations

from spooler.core.errors import ConfigError
from spooler.core.settings import Settings
from spooler.lab.blacs import BlacsControl, Withdrawal
from spooler.lab.interface import Lab, LabObservation, NoLab
from spooler.lab.oldnames import install

__all__ = ["Lab", "LabObservation", "NoLab", "Withdrawal", "make_lab"]

install()  # the old names of moved modules (spooler.lab.camera, ...) for users' trees


def make_lab(settings: Settings) -> Lab:
    """The lab the configuration names (for runmanager, its labscript profile is activated)."""
    if settings.lab.kind == "none":
        return NoLab(settings.path)
    if settings.lab.kind == "runmanager":
        if settings.lab.labscript_profile is not None:
            from spooler.core.labprofile import activate

            activate(settings.lab.labscript_profile)
        from spooler.lab.runmanager import RunmanagerLab

        return RunmanagerLab(
            settings.lab.runmanager, settings.lab.globals, BlacsControl(settings.folders.control)
        )
    raise ConfigError(f"{settings.path}: lab.kind: {settings.lab.kind!r} is not available")
