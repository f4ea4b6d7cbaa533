"""The control channel's JSON documents: published whole, read up to a bound.

A document is written hidden and flushed, then renamed to its name, so that a reader
(labspool's side of the control channel, or the plugin started again) sees it whole or not
at all. Requests and the withdrawn folders are read up to :data:`REQUEST_MAX_BYTES`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .files import write_hidden

__all__ = ["REQUEST_MAX_BYTES", "publish"]

REQUEST_MAX_BYTES = 1 << 20


def publish(folder: str, name: str, document: dict[str, Any]) -> None:
    """Publish *document* as ``<folder>/<name>``, its keys sorted."""
    tmp = write_hidden(folder, name, (json.dumps(document, sort_keys=True) + "\n").encode())
    os.rename(tmp, os.path.join(folder, name))
