"""labscript header of the virtual NaLi apparatus, the original labscript machine (dummy devices).

The model: five wires, each an independent large spin of ATOMS_PER_WIRE atoms, in level 0
(``m = +N/2``, qiskit-cold-atom's initial state) when the shot starts (the machine loads
its sodium-lithium mixture itself: there is no ``load`` gate); ``rLx``, ``rLz`` and
``rLz2`` rotate one wire's spin exactly as singlequdit's ``rlx``, ``rlz``, ``rlz2`` do
(spooler.virtual.spins); nothing couples the wires, so each is evolved on its own.
``measure`` on a wire has the camera leave one cloud per measured wire, in the order of the
``measure`` instructions, at ``/images/top/fluorescence/atoms``;
result.routines.spins reads them back.

labspool appends one call per instruction, ``apparatus.<gate>([wires], [parameters])``, and
finally ``apparatus.finish()``.
"""

from labscript import start

from spooler.virtual.machines import SpinMachine, dummy_devices

ATOMS_PER_WIRE = 20

devices = dummy_devices()
start()
apparatus = SpinMachine(devices, wires=5, atoms_per_wire=ATOMS_PER_WIRE)
