"""Analysis of the virtual singlequdit apparatus: atoms counted on the camera image.

The apparatus leaves an image with ``signal_per_atom`` counts per atom found out of the
loaded state (plus noise); the count is the image's sum divided by that, rounded: the level
``k`` qiskit-cold-atom measures (the loaded state, ``m = +N/2``, is level 0). The shot's ``memory``
entry is that number as text, the format of the ecosystem's spin machines (see
:mod:`result.routines.images` for a shot without an image).
"""

from __future__ import annotations

from typing import Any

from result.routines.images import read_image

__all__ = ["count_atoms"]


def count_atoms(run: Any) -> dict[str, Any]:
    found = read_image(run, "take_image")
    if found is None:
        return {"memory": ""}
    image, attrs = found
    atoms = round(float(image.sum()) / float(attrs["signal_per_atom"]))
    return {"atoms": atoms, "memory": str(atoms)}
