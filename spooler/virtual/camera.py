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

**Faults on demand** (``labspool lab fault``): before it writes its image, a camera looks at
the lab's faults file, whose path the environment variable :data:`FAULTS_ENV` gives (the
virtual lab sets it for every process it starts, BLACS's device workers included):

    {"camera": [{"job_id": "<id or null for any>", "shots": <how many more, or null: every
                 one>, "message": "..."}]}

A fault that matches the shot's job (passed by :mod:`spooler.virtual.machines` at compile time)
is counted down (the file rewritten and renamed into place under an ``fcntl`` lock, entries
used up removed) and the camera raises ``RuntimeError(message)``: BLACS puts the camera's tab
in 'fatal error', takes the shot back to the front of its queue and pauses the queue, as a
real device failing at the end of a shot makes it do. No variable or no file: no fault.
The camera functions import :func:`raise_injected_fault` from here when they run (they run
in labspool's own environment: the virtual lab's BLACS is started with it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "FAULTS_ENV",
    "IMAGE",
    "add_fault",
    "clear_faults",
    "raise_injected_fault",
    "read_faults",
    "spin_clouds",
    "take_fault",
    "tweezer_spots",
]

IMAGE = "images/top/fluorescence/atoms"
FAULTS_ENV = "LABSPOOL_VIRTUAL_FAULTS"
DEVICES = ("camera",)
DEFAULT_MESSAGE = "injected fault: the virtual camera failed (labspool lab fault)"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """The faults file's lock (a file beside it): one reader-writer at a time."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (releases the lock)


def read_faults(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The faults file (empty when there is none); ValueError when it is not one."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    if not isinstance(document, dict) or not all(
        isinstance(v, list) and all(isinstance(e, dict) for e in v) for v in document.values()
    ):
        raise ValueError(f"{path} is not a faults file ({{device: [fault, ...]}})")
    return document


def _write(path: Path, document: dict[str, list[dict[str, Any]]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def add_fault(
    path: Path,
    device: str,
    *,
    job_id: str | None = None,
    shots: int | None = 1,
    message: str = DEFAULT_MESSAGE,
) -> dict[str, Any]:
    """Make *device* fail the next *shots* shots (None: every one) of *job_id* (None: of
    any job); returns the fault as written."""
    if device not in DEVICES:
        raise ValueError(f"no virtual device {device!r} fails on demand (only {DEVICES})")
    if shots is not None and shots < 1:
        raise ValueError(f"shots: {shots} (give 1 or more, or every shot)")
    fault = {"job_id": job_id, "shots": shots, "message": message}
    with _locked(path):
        document = read_faults(path)
        document.setdefault(device, []).append(fault)
        _write(path, document)
    return fault


def clear_faults(path: Path) -> int:
    """No fault any more; returns how many there were."""
    with _locked(path):
        try:
            count = sum(len(v) for v in read_faults(path).values())
        except ValueError:
            count = 0
        _write(path, {})
    return count


def take_fault(path: Path, device: str, job_id: str | None) -> str | None:
    """The message of the first fault of *device* that matches *job_id*, counted down;
    None when none does."""
    if not path.exists():  # (every shot asks: no lock when there is nothing to read)
        return None
    with _locked(path):
        try:
            document = read_faults(path)
        except ValueError:
            return None  # a broken file fails no shot (`labspool lab fault --clear` mends it)
        faults = document.get(device, [])
        for index, fault in enumerate(faults):
            wanted = fault.get("job_id")
            shots = fault.get("shots")
            if (wanted is not None and wanted != job_id) or (shots is not None and shots < 1):
                continue
            if shots is not None:
                if shots <= 1:
                    del faults[index]
                else:
                    fault["shots"] = shots - 1
                _write(path, document)
            return str(fault.get("message") or DEFAULT_MESSAGE)
    return None


def raise_injected_fault(device: str, job_id: str | None) -> None:
    """Raise RuntimeError when the lab's faults file says *device* fails this shot."""
    where = os.environ.get(FAULTS_ENV)
    if not where:
        return
    message = take_fault(Path(where), device, job_id or None)
    if message is not None:
        raise RuntimeError(message)


def spin_clouds(shot_context, t, counts, wires, signal_per_atom, noise, pixels, seed, job_id=None):  # type: ignore[no-untyped-def]
    """*counts*: the measured wires' levels (atoms out of the loaded state), in ``measure``
    order (*wires*);
    *job_id*: the shot's job (a fault on demand may be for it)."""
    import h5py
    import numpy as np

    from spooler.virtual.camera import raise_injected_fault

    raise_injected_fault("camera", job_id)

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


def tweezer_spots(  # type: ignore[no-untyped-def]
    shot_context, t, occupations, wires, sites, signal_per_atom, noise, pixels, seed, job_id=None
):
    """*occupations*: the measured modes' (0 or 1), in ``measure`` order (*wires*);
    *job_id*: the shot's job (a fault on demand may be for it)."""
    import h5py
    import numpy as np

    from spooler.virtual.camera import raise_injected_fault

    raise_injected_fault("camera", job_id)

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
