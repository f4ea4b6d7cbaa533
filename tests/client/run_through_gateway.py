"""The released client against ``labspool web`` (runs in the client's venv, not labspool's).

``python run_through_gateway.py URL USER TOKEN``: builds singlequdit circuits with
qiskit-cold-atom, runs them with ``backend.run``, follows ``job.status()``, reads
``job.result()``; then a circuit whose angle is out of the machine's range, whose
``job.result()`` must raise the client's ``JobError`` with labspool's message. Prints one
JSON summary line.
"""

from __future__ import annotations

import json
import math
import sys
import time

from qiskit import QuantumCircuit
from qiskit.providers import JobError
from qiskit_cold_atom.providers import ColdAtomProvider


def circuit(angle: float, atoms: int = 10) -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.load_spins(atoms, 0)
    qc.rlx(angle, 0)
    qc.measure_all()
    return qc


def main() -> int:
    url, user, token = sys.argv[1:4]
    provider = ColdAtomProvider({"urls": [url], "username": user, "token": token})
    backend = provider.get_backend("singlequdit")
    summary: dict[str, object] = {"backend": backend.name()}
    job = backend.run([circuit(0.0), circuit(math.pi)], shots=3)
    states: list[str] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = job.status().name
        if not states or states[-1] != state:
            states.append(state)
        if state in ("DONE", "ERROR", "CANCELLED"):
            break
        time.sleep(0.5)
    result = job.result()
    summary.update(
        job_id=job.job_id(),
        states=states,
        memory=[result.get_memory(i) for i in range(2)],
        counts=[dict(result.get_counts(i)) for i in range(2)],
    )
    bad = backend.run(circuit(7.5), shots=2)  # rlx above 2 pi: the client does not check it
    try:
        bad.result()
        summary["bad"] = "no error"
    except JobError as error:
        summary["bad"] = str(error)
    summary["bad_message"] = bad.error_message()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
