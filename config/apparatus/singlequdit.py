"""labscript header of the virtual singlequdit apparatus (dummy devices, no hardware).

labspool renders an experiment file by appending to this header one call per instruction
of a job, ``apparatus.<gate>([wires], [parameters])``, and finally ``apparatus.finish()``.
The connection table below is what BLACS runs with; the gate methods turn each gate into
timed outputs of the dummy devices.
"""

from labscript import AnalogOut, DigitalOut, start, stop
from labscript_devices.DummyIntermediateDevice import DummyIntermediateDevice
from labscript_devices.DummyPseudoclock.labscript_devices import DummyPseudoclock

DummyPseudoclock(name="pseudoclock")
DummyIntermediateDevice(name="intermediate_device", parent_device=pseudoclock.clockline)
AnalogOut(name="rf_amplitude", parent_device=intermediate_device, connection="ao0")
AnalogOut(name="rf_phase", parent_device=intermediate_device, connection="ao1")
AnalogOut(name="squeezing_field", parent_device=intermediate_device, connection="ao2")
DigitalOut(name="loading_shutter", parent_device=intermediate_device, connection="port0/line0")
DigitalOut(name="imaging_shutter", parent_device=intermediate_device, connection="port0/line1")


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
        self.atoms = 0

    def _pulse(self, channel, amplitude, duration_s, phase=0.0):
        channel.constant(self.t, amplitude)
        rf_phase.constant(self.t, phase)
        self.t += max(duration_s, self.settle_s)
        channel.constant(self.t, 0.0)
        self.t += self.settle_s

    def load(self, wires, params):
        self.atoms = int(params[0])
        loading_shutter.go_high(self.t)
        self.t += self.load_s
        loading_shutter.go_low(self.t)
        self.t += self.settle_s

    def rlx(self, wires, params):
        self._pulse(rf_amplitude, 1.0, params[0] / self.rabi_rad_per_s)

    def rlz(self, wires, params):
        self._pulse(rf_amplitude, 0.0, params[0] / self.larmor_rad_per_s, phase=1.0)

    def rlz2(self, wires, params):
        self._pulse(squeezing_field, 1.0, params[0] / self.squeezing_rad_per_s)

    def barrier(self, wires, params):
        self.t += self.settle_s

    def measure(self, wires, params):
        imaging_shutter.go_high(self.t)
        self.t += self.imaging_s
        imaging_shutter.go_low(self.t)
        self.t += self.settle_s

    def finish(self):
        stop(self.t + self.settle_s)


start()
apparatus = Apparatus()
