"""The old name of ``spooler.virtual.fermions``, kept for what users' trees import by it:
apparatus headers and labscript profiles written by earlier versions, shots compiled before
an upgrade. It is the very same module (one state, one set of faults)."""

import sys

from spooler.virtual import fermions

sys.modules[__name__] = fermions
