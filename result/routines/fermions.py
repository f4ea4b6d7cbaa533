"""Analysis of the virtual fermions machine: each measured mode's spot on the tweezer image.

The camera (spooler.virtual.camera.tweezer_spots) leaves a spin-resolved image of the array: a
row per spin state (up, down), a column per site, ``spot_pixels`` square, a fermion's spot
holding ``signal_per_atom`` counts plus noise. A mode (wire ``2 i + s``: site ``i``, spin
``s``) is occupied when its spot holds more than half a fermion's light. The shot's ``memory``
entry is the measured modes' occupations, in the order of the ``measure`` instructions
(attribute ``wires``), separated by spaces (``"1 0 0 1"``); each is also a column
(``occupation_wire<w>``).
"""

from __future__ import annotations

from typing import Any

from result.routines.images import read_image

__all__ = ["read_tweezers"]


def read_tweezers(run: Any) -> dict[str, Any]:
    found = read_image(run, "tweezer_spots")
    if found is None:
        return {"memory": ""}
    image, attrs = found
    wires = [int(w) for w in attrs["wires"]]
    pixels = int(attrs["spot_pixels"])
    signal = float(attrs["signal_per_atom"])
    occupations = []
    for wire in wires:
        row, column = wire % 2, wire // 2
        spot = image[row * pixels : (row + 1) * pixels, column * pixels : (column + 1) * pixels]
        if spot.shape != (pixels, pixels):
            raise ValueError(f"wire {wire}'s spot is outside the camera image {image.shape}")
        occupations.append(int(float(spot.sum()) > signal / 2))
    result: dict[str, Any] = {
        f"occupation_wire{w}": n for w, n in zip(wires, occupations, strict=True)
    }
    result["memory"] = " ".join(map(str, occupations))
    return result
