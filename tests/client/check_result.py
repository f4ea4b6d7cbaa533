"""Read a labspool result file the way the released qiskit-cold-atom client does.

Runs in the client's venv: ``DIR/bin/python tests/client/check_result.py RESULT.json
[--reference JOB.reference.json]``. The client's ``job.result()`` is
``qiskit.result.Result.from_dict`` of the document; a user then calls ``get_memory`` and
``get_counts`` per experiment. This does the same (qiskit-terra 0.23) and prints a JSON
summary. With ``--reference`` (a table of ``make_jobs.py``) it also counts the outcomes the
exact distribution gives no probability (``impossible``) and reports each experiment's
total variation distance from it (information only: a finite number of shots).

Exit status: 0 when everything could be read and no outcome is impossible; 1 otherwise
(the summary says what failed); 2 for a file that cannot be read as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from qiskit.result import Result

NO_PROBABILITY = 1e-12  # an outcome the reference gives less than this is impossible


def check(
    document: dict[str, Any], reference: dict[str, dict[str, float]] | None
) -> dict[str, Any]:
    summary: dict[str, Any] = {"errors": []}
    errors: list[str] = summary["errors"]
    if document.get("status") != "finished":
        errors.append(f"status is {document.get('status')!r}: the client polls until 'finished'")
    try:
        result = Result.from_dict(document)
    except Exception as error:  # what the client's job.result() would raise
        errors.append(f"Result.from_dict: {type(error).__name__}: {error}")
        return summary
    summary.update(backend_name=result.backend_name, job_id=result.job_id)
    summary["success"] = result.success
    experiments = []
    for index, experiment in enumerate(result.results):
        name = getattr(experiment.header, "name", None) if experiment.header else None
        entry: dict[str, Any] = {"index": index, "name": name, "shots": experiment.shots}
        experiments.append(entry)
        try:
            memory = result.get_memory(index)
        except Exception as error:
            errors.append(f"experiment {index}: get_memory: {type(error).__name__}: {error}")
            continue
        entry["memory_entries"] = len(memory)
        if len(memory) != experiment.shots:
            errors.append(
                f"experiment {index}: {len(memory)} memory entries, shots {experiment.shots}"
            )
        observed = Counter(str(m) for m in memory)
        entry["memory_counts"] = dict(sorted(observed.items()))
        try:
            entry["counts"] = dict(result.get_counts(index))
        except Exception as error:
            errors.append(f"experiment {index}: get_counts: {type(error).__name__}: {error}")
        if reference is not None and name in reference:
            table = reference[name]
            impossible = {m: n for m, n in observed.items() if table.get(m, 0.0) < NO_PROBABILITY}
            total = sum(observed.values()) or 1
            outcomes = set(table) | set(observed)
            entry["total_variation"] = 0.5 * sum(
                abs(observed.get(m, 0) / total - table.get(m, 0.0)) for m in outcomes
            )
            entry["impossible"] = impossible
            if impossible:
                errors.append(f"experiment {index}: outcomes of no probability: {impossible}")
        elif reference is not None:
            errors.append(f"experiment {index}: {name!r} is not in the reference")
    summary["experiments"] = experiments
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Read a labspool result as the client does.")
    parser.add_argument("result", type=Path)
    parser.add_argument("--reference", type=Path, help="a make_jobs.py reference table")
    args = parser.parse_args(argv)
    try:
        document = json.loads(args.result.read_text(encoding="utf-8"))
        reference = (
            json.loads(args.reference.read_text(encoding="utf-8")) if args.reference else None
        )
    except (OSError, ValueError) as error:
        print(json.dumps({"errors": [f"{type(error).__name__}: {error}"]}, indent=1))
        return 2
    summary = check(document, reference)
    summary["ok"] = not summary["errors"]
    print(json.dumps(summary, indent=1, default=str))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
