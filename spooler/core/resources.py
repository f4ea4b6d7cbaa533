"""Where the data that ships with labspool (``schemas/``, ``config/``) is found.

In a source checkout (and an editable install) they are the top-level folders of the
repository; a wheel carries them as ``spooler/_data/``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["config_dir", "schema_path", "systemd_template", "systemd_timer_template"]

_PACKAGE = Path(__file__).resolve().parents[1]  # spooler/


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"labspool's {name}/ folder is missing from the installation")


def schema_path(name: str) -> Path:
    """The path of the shipped JSON schema *name* (e.g. ``config.schema.json``)."""
    return _data_dir("schemas") / name


def config_dir() -> Path:
    """The shipped ``config/`` folder: example configuration, apparatus header, example jobs."""
    return _data_dir("config")


def systemd_template() -> Path:
    """The shipped unit template (``systemd/labspool.service.in``)."""
    return _data_dir("systemd") / "labspool.service.in"


def systemd_timer_template() -> Path:
    """The shipped timer template of ``labspool prune`` (``systemd/labspool-prune.timer.in``)."""
    return _data_dir("systemd") / "labspool-prune.timer.in"
