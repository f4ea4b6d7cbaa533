"""labspool's spooler: the job model and the daemon that turns job files into experiment runs.

The package owns everything about a job (ids, states, the store, status files, folders,
settings); the ``result`` package may import it, never the reverse.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
