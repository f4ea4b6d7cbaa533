"""The camera image of a virtual machine's shot, or a clear error where it should be.

The apparatus leaves its image at ``/images/top/fluorescence/atoms`` (spooler.virtual.camera),
where lyse's ``Run.get_image`` finds it, with its layout in the dataset's attributes. A shot
without ``measure`` has no image (its memory entry is empty); a shot that measured (its camera
function is in the FunctionRunner's table, the list of what BLACS ran) but has no image is an
error, not an empty entry: a result must never hide a lost image.
"""

from __future__ import annotations

from typing import Any

__all__ = ["IMAGE", "read_image"]

IMAGE = "images/top/fluorescence/atoms"
FUNCTIONS = "devices/camera/FUNCTION_TABLE"  # FunctionRunner's table: what runs in BLACS


def read_image(run: Any, camera_function: str) -> tuple[Any, dict[str, Any]] | None:
    """The image (a float array) and its attributes; None for a shot that measured nothing."""
    import h5py

    with h5py.File(run.h5_path, "r") as shot:
        if IMAGE not in shot:
            if FUNCTIONS in shot and camera_function in _names(shot[FUNCTIONS][()]):
                raise ValueError(f"the shot measured but its camera image ({IMAGE}) is missing")
            return None
        attrs = dict(shot[IMAGE].attrs)
    return run.get_image("top", "fluorescence", "atoms"), attrs


def _names(table: Any) -> set[str]:
    return {n.decode() if isinstance(n, bytes) else str(n) for n in table["name"]}
