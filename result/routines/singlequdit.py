"""Analysis of the virtual singlequdit apparatus: atoms counted on the camera image.

The apparatus leaves an image with ``signal_per_atom`` counts per atom in the upper state
(plus noise) at ``/images/top/fluorescence/atoms``; the count is the image's sum divided by
that, rounded. The shot's ``memory`` entry is that number as text, the format of the
ecosystem's spin machines. A shot without ``measure`` has no image and an empty entry.
"""

from __future__ import annotations

from typing import Any

__all__ = ["count_atoms"]

IMAGE = "images/top/fluorescence/atoms"


def count_atoms(run: Any) -> dict[str, Any]:
    import h5py

    with h5py.File(run.h5_path, "r") as shot:
        if IMAGE not in shot:
            return {"memory": ""}
        signal_per_atom = float(shot[IMAGE].attrs["signal_per_atom"])
    image = run.get_image("top", "fluorescence", "atoms")
    atoms = round(float(image.sum()) / signal_per_atom)
    return {"atoms": atoms, "memory": str(atoms)}
