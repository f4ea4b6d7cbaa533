"""labscript header for any labspool backend on dummy devices (no hardware).

Every gate of the four shipped backends (singlequdit, multiqudit, fermions, nali) becomes a
pulse on a dummy analog output whose duration is proportional to the gate's angle. Use it
as the starting point of a real apparatus header: replace the devices with the machine's
and each method with what the gate does on it. labspool appends one call per instruction,
``apparatus.<gate>([wires], [parameters])``, and ``apparatus.finish()``.
"""

import builtins

from labscript import AnalogOut, DigitalOut, start, stop
from labscript_devices.DummyIntermediateDevice import DummyIntermediateDevice
from labscript_devices.DummyPseudoclock.labscript_devices import DummyPseudoclock

DummyPseudoclock(name="pseudoclock")
DummyIntermediateDevice(name="intermediate_device", parent_device=pseudoclock.clockline)
AnalogOut(name="drive_amplitude", parent_device=intermediate_device, connection="ao0")
AnalogOut(name="drive_channel", parent_device=intermediate_device, connection="ao1")
DigitalOut(name="loading_shutter", parent_device=intermediate_device, connection="port0/line0")
DigitalOut(name="imaging_shutter", parent_device=intermediate_device, connection="port0/line1")


class Apparatus:
    rad_per_s = 2000.0
    load_s = 0.010
    imaging_s = 0.002
    settle_s = 0.0005

    def __init__(self):
        self.t = 0.0

    def _pulse(self, channel_code, wires, params):
        angle = params[0] if params else 0.0
        drive_channel.constant(self.t, channel_code + 0.01 * wires[0])
        drive_amplitude.constant(self.t, 1.0)
        self.t += max(angle / self.rad_per_s, self.settle_s)
        drive_amplitude.constant(self.t, 0.0)
        self.t += self.settle_s

    def load(self, wires, params):
        loading_shutter.go_high(self.t)
        # the lab's runmanager global, where it has one (a real trap loads for seconds)
        self.t += float(getattr(builtins, "load_time_s", self.load_s))
        loading_shutter.go_low(self.t)
        self.t += self.settle_s

    def measure(self, wires, params):
        imaging_shutter.go_high(self.t)
        self.t += self.imaging_s
        imaging_shutter.go_low(self.t)
        self.t += self.settle_s

    def barrier(self, wires, params):
        self.t += self.settle_s

    def rlx(self, wires, params):
        self._pulse(1.0, wires, params)

    def rlz(self, wires, params):
        self._pulse(2.0, wires, params)

    def rlz2(self, wires, params):
        self._pulse(3.0, wires, params)

    def rlxly(self, wires, params):
        self._pulse(4.0, wires, params)

    def rlzlz(self, wires, params):
        self._pulse(5.0, wires, params)

    def fhop(self, wires, params):
        self._pulse(6.0, wires, params)

    def fint(self, wires, params):
        self._pulse(7.0, wires, params)

    def fphase(self, wires, params):
        self._pulse(8.0, wires, params)

    rLx = rlx
    rLz = rlz
    rLz2 = rlz2

    def finish(self):
        stop(self.t + self.settle_s)


start()
apparatus = Apparatus()
