"""labscript header of the virtual singlequdit apparatus (dummy devices, no hardware).

labspool renders an experiment file by appending to this header one call per instruction
of a job, ``apparatus.<gate>([wires], [parameters])``, and finally ``apparatus.finish()``.
The connection table below is what BLACS runs with; the gate methods turn each gate into
timed outputs of the dummy devices and, for the virtual machine, evolve the atoms' state
exactly (spooler.virtual.physics, in qiskit-cold-atom's convention: ``load`` prepares level
0, ``m = +N/2``). ``measure`` makes the camera function run at the end of the shot inside
BLACS: it draws the level, the number of atoms out of the loaded state, from the exact
distribution and leaves an image with that many atoms' worth of signal in the shot file,
at ``/images/top/fluorescence/atoms``, where lyse's ``Run.get_image`` finds it.

Globals the apparatus reads (set per experiment by labspool through runmanager):
``labspool_shot`` (the shot index) and ``labspool_seed`` (the job's seed, or None).
"""

import builtins

from labscript import AnalogOut, DigitalOut, start, stop
from labscript_devices.DummyIntermediateDevice import DummyIntermediateDevice
from labscript_devices.DummyPseudoclock.labscript_devices import DummyPseudoclock
from labscript_devices.FunctionRunner.labscript_devices import FunctionRunner

from spooler.virtual.physics import LargeSpin

DummyPseudoclock(name="pseudoclock")
DummyIntermediateDevice(name="intermediate_device", parent_device=pseudoclock.clockline)
AnalogOut(name="rf_amplitude", parent_device=intermediate_device, connection="ao0")
AnalogOut(name="rf_phase", parent_device=intermediate_device, connection="ao1")
AnalogOut(name="squeezing_field", parent_device=intermediate_device, connection="ao2")
DigitalOut(name="loading_shutter", parent_device=intermediate_device, connection="port0/line0")
DigitalOut(name="imaging_shutter", parent_device=intermediate_device, connection="port0/line1")
FunctionRunner(name="camera")

SIGNAL_PER_ATOM = 50.0  # camera counts per atom
NOISE_PER_PIXEL = 0.3  # camera counts, standard deviation
IMAGE_PIXELS = 16


def take_image(shot_context, t, probabilities, seed, signal_per_atom, noise, pixels, job_id=None):
    """Runs in BLACS at the end of the shot: draw the atom number, write the camera image.
    The virtual lab's faults on demand (``labspool lab fault``) may make it fail for *job_id*."""
    import h5py
    import numpy as np

    try:
        from spooler.virtual.camera import raise_injected_fault
    except ImportError:  # a BLACS without labspool: no faults on demand
        pass
    else:
        raise_injected_fault("camera", job_id)

    rng = np.random.default_rng(seed)
    atoms_up = int(rng.choice(len(probabilities), p=np.asarray(probabilities) / sum(probabilities)))
    y, x = np.mgrid[0:pixels, 0:pixels] - (pixels - 1) / 2
    cloud = np.exp(-(x**2 + y**2) / (2 * (pixels / 6) ** 2))
    image = atoms_up * signal_per_atom * cloud / cloud.sum()
    image = image + rng.normal(0.0, noise, image.shape)
    with h5py.File(shot_context.h5_file, "r+") as shot:
        group = shot.require_group("images/top/fluorescence")
        dataset = group.create_dataset("atoms", data=image.astype(np.float32))
        dataset.attrs["signal_per_atom"] = signal_per_atom
        dataset.attrs["noise_per_pixel"] = noise


def _global(name, default=None):
    """A runmanager global of the shot being compiled (labscript makes them builtins)."""
    return getattr(builtins, name, default)


class Apparatus:
    """The gates of the singlequdit machine as timed outputs.

    Rotation angles become pulse durations at a fixed Rabi or Larmor frequency.
    """

    rabi_rad_per_s = 2000.0
    larmor_rad_per_s = 2000.0
    squeezing_rad_per_s = 20000.0
    load_s = 0.010
    imaging_s = 0.002
    settle_s = 0.0005

    def __init__(self):
        self.t = 0.0
        self.spin = None
        self.measured = False

    def _pulse(self, channel, amplitude, duration_s, phase=0.0):
        channel.constant(self.t, amplitude)
        rf_phase.constant(self.t, phase)
        self.t += max(duration_s, self.settle_s)
        channel.constant(self.t, 0.0)
        self.t += self.settle_s

    def load(self, wires, params):
        self.spin = LargeSpin(int(params[0]))
        loading_shutter.go_high(self.t)
        # the lab's runmanager global, where it has one (a real trap loads for seconds)
        self.t += float(_global("load_time_s", self.load_s))
        loading_shutter.go_low(self.t)
        self.t += self.settle_s

    def _evolve(self, gate, theta):
        if self.spin is not None:
            getattr(self.spin, gate)(theta)

    def rlx(self, wires, params):
        self._pulse(rf_amplitude, 1.0, params[0] / self.rabi_rad_per_s)
        self._evolve("rlx", params[0])

    def rlz(self, wires, params):
        self._pulse(rf_amplitude, 0.0, params[0] / self.larmor_rad_per_s, phase=1.0)
        self._evolve("rlz", params[0])

    def rlz2(self, wires, params):
        self._pulse(squeezing_field, 1.0, params[0] / self.squeezing_rad_per_s)
        self._evolve("rlz2", params[0])

    def barrier(self, wires, params):
        self.t += self.settle_s

    def measure(self, wires, params):
        imaging_shutter.go_high(self.t)
        self.t += self.imaging_s
        imaging_shutter.go_low(self.t)
        self.t += self.settle_s
        self.measured = True

    def finish(self):
        if self.measured:
            # Without atoms loaded the camera sees nothing: a spin of no atoms.
            probabilities = [1.0] if self.spin is None else self.spin.level_probabilities()
            job_seed = _global("labspool_seed")
            seed = None if job_seed is None else [int(job_seed), int(_global("labspool_shot", 0))]
            camera.add_function(
                "stop",
                take_image,
                [float(p) for p in probabilities],
                seed,
                SIGNAL_PER_ATOM,
                NOISE_PER_PIXEL,
                IMAGE_PIXELS,
                _global("labspool_job_id") or None,
            )
        stop(self.t + self.settle_s)


start()
apparatus = Apparatus()
