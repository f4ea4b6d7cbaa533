"""The HTTP gateway of the qiskit-cold-atom client: ``labspool web`` (see :mod:`.app`)."""
