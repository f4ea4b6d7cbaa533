"""The virtual machines' cameras: what BLACS runs at the end of a shot to leave its images.

These functions run inside BLACS through labscript's ``FunctionRunner``, which stores their
source in the shot file and executes it there, alone: each one is self-contained (it imports
what it needs itself), takes only JSON-serialisable arguments, and has no annotations (they
would be evaluated where nothing of this module is defined). The outcome of the measurement is
drawn when the shot is compiled, from the exact state (a large register's distribution
would be megabytes per shot as an argument); the camera turns it into light: an image with
``signal_per_atom`` counts per atom (or per fermion) and Gaussian read-out noise, which the
shipped analysis routines (``result.routines``) read back like a real camera's image.

Both write one image at ``/images/top/fluorescence/atoms`` (where lyse's ``Run.get_image``
finds it) with its layout in the dataset's attributes:

- ``spin_clouds``: one cloud of ``cloud_pixels`` x ``cloud_pixels`` per measured wire, side
  by side in the order of the ``measure`` instructions (attribute ``wires``);
- ``tweezer_spots``: the tweezer array, a row per spin state (up, down) and a column per
  site, ``spot_pixels`` square; a measured mode's spot holds its fermion's light, modes not
  measured are not imaged (attribute ``wires``: the measured modes in ``measure`` order).
"""

from __future__ import annotations

__all__ = ["IMAGE", "spin_clouds", "tweezer_spots"]

IMAGE = "images/top/fluorescence/atoms"


def spin_clouds(shot_context, t, counts, wires, signal_per_atom, noise, pixels, seed):  # type: ignore[no-untyped-def]
    """*counts*: the measured wires' upper-state counts, in ``measure`` order (*wires*)."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:pixels, 0:pixels] - (pixels - 1) / 2
    cloud = np.exp(-(x**2 + y**2) / (2 * (pixels / 6) ** 2))
    cloud = cloud / cloud.sum()
    image = np.concatenate([k * signal_per_atom * cloud for k in counts], axis=1)
    image = image + rng.normal(0.0, noise, image.shape)
    with h5py.File(shot_context.h5_file, "r+") as shot:
        group = shot.require_group("images/top/fluorescence")
        dataset = group.create_dataset("atoms", data=image.astype(np.float32))
        dataset.attrs["signal_per_atom"] = signal_per_atom
        dataset.attrs["noise_per_pixel"] = noise
        dataset.attrs["cloud_pixels"] = pixels
        dataset.attrs["wires"] = np.asarray(wires, dtype=np.int64)


def tweezer_spots(shot_context, t, occupations, wires, sites, signal_per_atom, noise, pixels, seed):  # type: ignore[no-untyped-def]
    """*occupations*: the measured modes' (0 or 1), in ``measure`` order (*wires*)."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:pixels, 0:pixels] - (pixels - 1) / 2
    spot = np.exp(-(x**2 + y**2) / (2 * (pixels / 5) ** 2))
    spot = spot / spot.sum()
    image = np.zeros((2 * pixels, sites * pixels))
    for wire, n in zip(wires, occupations, strict=True):
        row, column = wire % 2, wire // 2  # interleaved: wire 2 i + s is site i, spin s
        image[row * pixels : (row + 1) * pixels, column * pixels : (column + 1) * pixels] += (
            n * signal_per_atom * spot
        )
    image = image + rng.normal(0.0, noise, image.shape)
    with h5py.File(shot_context.h5_file, "r+") as shot:
        group = shot.require_group("images/top/fluorescence")
        dataset = group.create_dataset("atoms", data=image.astype(np.float32))
        dataset.attrs["signal_per_atom"] = signal_per_atom
        dataset.attrs["noise_per_pixel"] = noise
        dataset.attrs["spot_pixels"] = pixels
        dataset.attrs["wires"] = np.asarray(wires, dtype=np.int64)
