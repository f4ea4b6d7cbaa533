"""labscript header of the virtual fermions apparatus: a tweezer array (dummy devices).

Four tweezer sites, two spin states each: eight modes, wires interleaved (wire 2 i is site i
spin up, 2 i + 1 site i spin down). ``load`` puts one fermion in a mode; ``fhop``, ``fint`` and
``fphase`` are qiskit-cold-atom's fermionic tweezer gates, evolved exactly in the 256-state
Fock space (spooler.virtual.fermions, through spooler.virtual.machines). ``measure`` on a mode has
the
camera leave a spin-resolved image of the array (a row per spin, a column per site) at
``/images/top/fluorescence/atoms``; result.routines.fermions reads each measured mode's
occupation back.

labspool appends one call per instruction, ``apparatus.<gate>([wires], [parameters])``, and
finally ``apparatus.finish()``.
"""

from labscript import start

from spooler.virtual.machines import FermionMachine, dummy_devices

devices = dummy_devices()
start()
apparatus = FermionMachine(devices)
