"""Single-shot analysis: routines named ``module:function``, run in order on each shot.

Each routine receives a ``lyse.Run`` for the shot (its group set to the routine's name) and
returns a mapping of named results; they are saved where lyse saves them, as attributes of
``results/<routine>`` (arrays as datasets), so lyse and its users see them. lyse is imported
only when analysis runs: it needs a labscript profile (the daemon activates the lab's).
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from result.archive import StoreUnavailable, is_transient
from spooler.core.errors import ConfigError, LabspoolError
from spooler.core.headless import headless

__all__ = ["AnalysisError", "Routine", "analyse", "load_routines", "version_of"]


class AnalysisError(LabspoolError):
    """A routine raised; the message names the routine and what it said."""


@dataclass(frozen=True)
class Routine:
    name: str
    spec: str
    function: Callable[[Any], Mapping[str, Any]]


def load_routines(specs: tuple[str, ...], *, setting: str = "result.routines") -> list[Routine]:
    """The functions *specs* (``module:function``) name; one that cannot be imported is a
    :class:`ConfigError` naming *setting* (the configuration key they came from)."""
    routines = []
    for spec in specs:
        module_name, _, function_name = spec.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{setting}: cannot load {spec}: {exc}") from exc
        routines.append(Routine(function_name, spec, function))
    return routines


def version_of(routines: Iterable[Routine]) -> str:
    """The version of *routines* as loaded in this process: each spec with the SHA-256 of its
    module's source (12 hex digits; ``unknown`` when it cannot be read), joined by ``;``."""
    parts = []
    for routine in routines:
        module = sys.modules.get(getattr(routine.function, "__module__", "") or "")
        source = getattr(module, "__file__", None)
        try:
            digest = hashlib.sha256(Path(str(source)).read_bytes()).hexdigest()[:12]
        except OSError:
            digest = "unknown"
        parts.append(f"{routine.spec}@{digest}")
    return ";".join(parts)


def analyse(shot: Path, routines: list[Routine]) -> dict[str, dict[str, Any]]:
    """Run every routine on *shot*, save the results into it; returns them by routine."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        # lyse 3.3 warns that a Run outside its GUI ("standalone") is deprecated; it is the
        # documented way to read and write a shot's results, and the one used here.
        warnings.filterwarnings(
            "ignore", "Running standalone single-shot lyse scripts", FutureWarning
        )
        from lyse import Run
    headless()  # the suite's import installed its Tk exception hook

    results: dict[str, dict[str, Any]] = {}
    for routine in routines:
        run = Run(str(shot))
        run.set_group(routine.name)
        try:
            values = dict(routine.function(run))
        except Exception as exc:
            if is_transient(exc):  # zlock did not answer: not the routine's fault, nor the shot's
                raise StoreUnavailable(f"zlock failed during {routine.spec}: {exc}") from exc
            raise AnalysisError(
                f"{routine.spec} failed on {shot.name}: {type(exc).__name__}: {exc}"
            ) from exc
        with run.open("r+"):  # one open for all of the routine's results
            for key, value in values.items():
                if isinstance(value, np.ndarray) and value.ndim > 0:
                    run.save_result_array(key, value)
                else:
                    run.save_result(key, value)
        results[routine.name] = values
    return results
