"""An analysis routine that fails, for the result daemon's tests (not shipped)."""

from __future__ import annotations

from typing import Any


def explode(run: Any) -> dict[str, Any]:
    raise RuntimeError("the camera saw nothing")
