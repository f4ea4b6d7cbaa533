"""labscript header of the virtual multiqudit apparatus (dummy devices, no hardware).

Up to four wires, each a large spin of the atoms ``load`` puts there, coupled by ``rlzlz``
and ``rlxly`` on adjacent wires; the state is evolved exactly on the product space of the
loaded wires (spooler.virtual.spins, through spooler.virtual.machines). ``measure`` on a wire has
the
camera leave one cloud per measured wire in the shot, in the order of the ``measure``
instructions, at ``/images/top/fluorescence/atoms``; result.routines.spins reads them back.

The virtual machine's limit: the product of (atoms + 1) over the loaded wires is at most
spooler.virtual.spins.STATES_MAX (65536) states; the spooler refuses a larger job before it runs
(``limits.exact_states_max``, which ``labspool lab up`` sets). A real machine has no such limit.

labspool appends one call per instruction, ``apparatus.<gate>([wires], [parameters])``, and
finally ``apparatus.finish()``.
"""

from labscript import start

from spooler.virtual.machines import SpinMachine, dummy_devices

devices = dummy_devices()
start()
apparatus = SpinMachine(devices, wires=4)
