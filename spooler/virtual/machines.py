"""The virtual machines behind the shipped apparatus headers (multiqudit, nali, fermions).

A header (``config/apparatus/<backend>.py``) makes the labscript devices of its connection
table and hands them to one of these classes, whose methods are the backend's gates
(labspool renders ``apparatus.<gate>([wires], [params])`` per instruction, then
``apparatus.finish()``). Each gate becomes timed outputs of the dummy devices, as a real
machine's would, and evolves the machine's exact state (:mod:`spooler.virtual.spins`,
:mod:`spooler.virtual.fermions`). ``finish`` draws the measurement from that state (seeded from
the job's seed and the shot, when the job has a seed) and schedules the camera
(:mod:`spooler.virtual.camera`) at the end of the shot.

The devices come from the header; :func:`dummy_devices` makes the shipped headers' (labscript
is imported there only, in runmanager's compilation or BLACS, never by the daemons).

Globals the machines read (runmanager's, set per experiment by labspool): ``labspool_shot``,
``labspool_seed``, ``labspool_job_id`` (handed to the camera, for the faults on demand of
``labspool lab fault``), and the lab's ``load_time_s`` (the loading stage's length).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from spooler.virtual.camera import spin_clouds, tweezer_spots
from spooler.virtual.fermions import SITES, TweezerFermions
from spooler.virtual.spins import STATES_MAX, SpinRegister

__all__ = ["Devices", "FermionMachine", "SpinMachine", "dummy_devices", "shot_seed"]

SIGNAL_PER_ATOM = 50.0  # camera counts per atom
NOISE_PER_PIXEL = 0.3  # camera counts, standard deviation
CLOUD_PIXELS = 16
FERMION_SIGNAL = 200.0  # counts per fermion: a single atom in a tweezer, well above the noise
SPOT_PIXELS = 8


def _global(name: str, default: Any = None) -> Any:
    """A runmanager global of the shot being compiled (labscript makes them builtins)."""
    return getattr(builtins, name, default)


def shot_seed(stream: int) -> list[int] | None:
    """A seed for *stream* (0: the measurement, 1: the camera's noise) of this shot, from the
    job's seed; None (fresh entropy) for a job without one."""
    job_seed = _global("labspool_seed")
    if job_seed is None:
        return None
    return [int(job_seed), int(_global("labspool_shot", 0)), stream]


def shot_job_id() -> str | None:
    """The job of the shot being compiled (None outside labspool's jobs)."""
    job_id = _global("labspool_job_id")
    return str(job_id) if job_id else None


@dataclass
class Devices:
    """The header's devices: a drive (amplitude, and which gate on which wire), the shutters,
    the camera (a FunctionRunner) and labscript's ``stop``."""

    drive_amplitude: Any
    drive_channel: Any
    loading_shutter: Any
    imaging_shutter: Any
    camera: Any
    stop: Callable[[float], Any]


def dummy_devices() -> Devices:
    """The virtual machines' connection table on labscript's dummy devices (the header calls
    this at module level, before ``start()``)."""
    from labscript import AnalogOut, DigitalOut, stop
    from labscript_devices.DummyIntermediateDevice import DummyIntermediateDevice
    from labscript_devices.DummyPseudoclock.labscript_devices import DummyPseudoclock
    from labscript_devices.FunctionRunner.labscript_devices import FunctionRunner

    clock = DummyPseudoclock(name="pseudoclock")
    board = DummyIntermediateDevice(name="intermediate_device", parent_device=clock.clockline)
    return Devices(
        drive_amplitude=AnalogOut(name="drive_amplitude", parent_device=board, connection="ao0"),
        drive_channel=AnalogOut(name="drive_channel", parent_device=board, connection="ao1"),
        loading_shutter=DigitalOut(
            name="loading_shutter", parent_device=board, connection="port0/line0"
        ),
        imaging_shutter=DigitalOut(
            name="imaging_shutter", parent_device=board, connection="port0/line1"
        ),
        camera=FunctionRunner(name="camera"),
        stop=stop,
    )


class _Machine:
    rad_per_s = 2000.0
    load_s = 0.010
    imaging_s = 0.002
    settle_s = 0.0005
    codes: ClassVar[Mapping[str, float]] = {}

    def __init__(self, devices: Devices) -> None:
        self.devices = devices
        self.t = 0.0
        self.measured: list[int] = []

    def _pulse(self, gate: str, wires: list[int], angle: float) -> None:
        d = self.devices
        d.drive_channel.constant(self.t, self.codes[gate] + 0.01 * wires[0])
        d.drive_amplitude.constant(self.t, 1.0)
        self.t += max(abs(angle) / self.rad_per_s, self.settle_s)
        d.drive_amplitude.constant(self.t, 0.0)
        self.t += self.settle_s

    def _load_stage(self) -> None:
        d = self.devices
        d.loading_shutter.go_high(self.t)
        # the lab's runmanager global, where it has one (a real trap loads for seconds)
        self.t += float(_global("load_time_s", self.load_s))
        d.loading_shutter.go_low(self.t)
        self.t += self.settle_s

    def barrier(self, wires: list[int], params: list[float]) -> None:
        self.t += self.settle_s

    def measure(self, wires: list[int], params: list[float]) -> None:
        d = self.devices
        d.imaging_shutter.go_high(self.t)
        self.t += self.imaging_s
        d.imaging_shutter.go_low(self.t)
        self.t += self.settle_s
        self.measured.extend(int(w) for w in wires)

    def _camera(self, function: Any, *args: Any) -> None:
        self.devices.camera.add_function("stop", function, *args)

    def finish(self) -> None:
        if self.measured:
            self._schedule_camera()
        self.devices.stop(self.t + self.settle_s)

    def _schedule_camera(self) -> None:
        raise NotImplementedError


class SpinMachine(_Machine):
    """Large spins on several wires (multiqudit). With *atoms_per_wire*, every wire holds that
    many atoms from the start and there is no ``load`` (nali, the original machine)."""

    codes: ClassVar[Mapping[str, float]] = {
        "rlx": 1.0,
        "rlz": 2.0,
        "rlz2": 3.0,
        "rlxly": 4.0,
        "rlzlz": 5.0,
    }

    def __init__(self, devices: Devices, *, wires: int, atoms_per_wire: int | None = None) -> None:
        super().__init__(devices)
        self.register = SpinRegister(STATES_MAX)
        self.independent = atoms_per_wire is not None
        self.spins: list[SpinRegister] = []
        self.loaded = False
        if atoms_per_wire is not None:  # a register per wire: nothing couples them
            self.spins = [SpinRegister() for _ in range(wires)]
            for wire, spin in enumerate(self.spins):
                spin.load(wire, atoms_per_wire)
            self._load_stage()

    def _on(self, wire: int) -> SpinRegister:
        return self.spins[wire] if self.independent else self.register

    def load(self, wires: list[int], params: list[float]) -> None:
        self.register.load(int(wires[0]), int(params[0]))
        if not self.loaded:  # the wires are loaded together, in one loading stage
            self._load_stage()
            self.loaded = True

    def rlx(self, wires: list[int], params: list[float]) -> None:
        self._pulse("rlx", wires, params[0])
        self._on(wires[0]).rlx(wires[0], params[0])

    def rlz(self, wires: list[int], params: list[float]) -> None:
        self._pulse("rlz", wires, params[0])
        self._on(wires[0]).rlz(wires[0], params[0])

    def rlz2(self, wires: list[int], params: list[float]) -> None:
        self._pulse("rlz2", wires, params[0])
        self._on(wires[0]).rlz2(wires[0], params[0])

    def rlxly(self, wires: list[int], params: list[float]) -> None:
        self._pulse("rlxly", wires, params[0])
        self.register.rlxly(wires[0], wires[1], params[0])

    def rlzlz(self, wires: list[int], params: list[float]) -> None:
        self._pulse("rlzlz", wires, params[0])
        self.register.rlzlz(wires[0], wires[1], params[0])

    # the original machine's names
    rLx = rlx
    rLz = rlz
    rLz2 = rlz2

    def _schedule_camera(self) -> None:
        seed = shot_seed(0)
        rng = np.random.default_rng(seed)
        if self.independent:
            counts = [self.spins[w].draw([w], rng)[0] for w in self.measured]
        else:
            counts = self.register.draw(self.measured, rng)
        self._camera(
            spin_clouds,
            counts,
            self.measured,
            SIGNAL_PER_ATOM,
            NOISE_PER_PIXEL,
            CLOUD_PIXELS,
            shot_seed(1),
            shot_job_id(),
        )


class FermionMachine(_Machine):
    """Fermions of two spin states in four tweezers, wires interleaved (fermions)."""

    codes: ClassVar[Mapping[str, float]] = {"fhop": 6.0, "fint": 7.0, "fphase": 8.0}

    def __init__(self, devices: Devices) -> None:
        super().__init__(devices)
        self.fermions = TweezerFermions()
        self.loaded = False

    def load(self, wires: list[int], params: list[float]) -> None:
        self.fermions.load(int(wires[0]))
        if not self.loaded:  # the tweezers are loaded together, in one loading stage
            self._load_stage()
            self.loaded = True

    def fhop(self, wires: list[int], params: list[float]) -> None:
        self._pulse("fhop", wires, params[0])
        self.fermions.fhop(tuple(int(w) for w in wires), params[0])

    def fint(self, wires: list[int], params: list[float]) -> None:
        self._pulse("fint", wires, params[0])
        self.fermions.fint(params[0])

    def fphase(self, wires: list[int], params: list[float]) -> None:
        self._pulse("fphase", wires, params[0])
        self.fermions.fphase(tuple(int(w) for w in wires), params[0])

    def _schedule_camera(self) -> None:
        occupations = self.fermions.draw(self.measured, np.random.default_rng(shot_seed(0)))
        self._camera(
            tweezer_spots,
            occupations,
            self.measured,
            SITES,
            FERMION_SIGNAL,
            NOISE_PER_PIXEL,
            SPOT_PIXELS,
            shot_seed(1),
            shot_job_id(),
        )
