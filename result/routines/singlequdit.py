"""Analysis of the virtual singlequdit apparatus: atoms counted on the camera image.

The apparatus leaves an image with ``signal_per_atom`` counts per atom in the upper state
(plus noise) at ``/images/top/fluorescence/atoms``; the count is the image's sum divided by
that, rounded. The shot's ``memory`` entry is that number as text, the format of the
ecosystem's spin machines. A shot without ``measure`` has no image and an empty entry; a
shot that measured (its camera function ``take_image`` is in the shot's function table) but
has no image is an error, not an empty entry: a result must never hide a lost image.
"""

from __future__ import annotations

from typing import Any

__all__ = ["count_atoms"]

IMAGE = "images/top/fluorescence/atoms"
FUNCTIONS = "devices/camera/FUNCTION_TABLE"  # FunctionRunner's table: what runs in BLACS


def count_atoms(run: Any) -> dict[str, Any]:
    import h5py

    with h5py.File(run.h5_path, "r") as shot:
        if IMAGE not in shot:
            if FUNCTIONS in shot and "take_image" in _names(shot[FUNCTIONS][()]):
                raise ValueError(f"the shot measured but its camera image ({IMAGE}) is missing")
            return {"memory": ""}
        signal_per_atom = float(shot[IMAGE].attrs["signal_per_atom"])
    image = run.get_image("top", "fluorescence", "atoms")
    atoms = round(float(image.sum()) / signal_per_atom)
    return {"atoms": atoms, "memory": str(atoms)}


def _names(table: Any) -> set[str]:
    return {n.decode() if isinstance(n, bytes) else str(n) for n in table["name"]}
