"""Analysis of the virtual multi-wire spin machines (multiqudit, nali): one cloud per wire.

The camera (spooler.virtual.camera.spin_clouds) leaves the measured wires' clouds side by side,
``cloud_pixels`` wide each, in the order of the ``measure`` instructions (attribute
``wires``), with ``signal_per_atom`` counts per atom found out of the loaded state plus
noise. Each cloud's sum divided by that, rounded, is the wire's count: qiskit-cold-atom's
measured level ``k`` (the loaded state, ``m = +N/2``, is level 0). The shot's ``memory`` entry is
the counts in that order separated by spaces (``"3 0 7"``), as qiskit-cold-atom's spin
simulator writes them; the counts are also kept one column per wire (``atoms_wire<w>``).
"""

from __future__ import annotations

from typing import Any

from result.routines.images import read_image

__all__ = ["count_clouds"]


def count_clouds(run: Any) -> dict[str, Any]:
    found = read_image(run, "spin_clouds")
    if found is None:
        return {"memory": ""}
    image, attrs = found
    wires = [int(w) for w in attrs["wires"]]
    pixels = int(attrs["cloud_pixels"])
    if image.shape[1] != pixels * len(wires):
        raise ValueError(
            f"the camera image is {image.shape[1]} pixels wide, not {pixels} per measured wire "
            f"({len(wires)} wires)"
        )
    signal = float(attrs["signal_per_atom"])
    counts = [
        round(float(image[:, n * pixels : (n + 1) * pixels].sum()) / signal)
        for n in range(len(wires))
    ]
    row: dict[str, Any] = {f"atoms_wire{w}": k for w, k in zip(wires, counts, strict=True)}
    row["memory"] = " ".join(map(str, counts))
    return row
