"""What a finished job leaves: a CSV per experiment on the store and the result JSON.

The CSV is lyse's DataFrame for the experiment's archived shots: each shot's row was made by
lyse's own ``get_dataframe_from_shot`` when the shot was archived and kept in the ledger; here
the rows are joined with lyse's ``concat_with_padding``, exactly as
``get_dataframe_from_shots`` does, without opening the shots again.

The result JSON is the Qiskit result format the clients read (``status`` "finished", one
``memory`` string per shot, in shot order).
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spooler.backends import Backend
from spooler.fsutil import write_atomic
from spooler.headless import headless
from spooler.store import ExperimentRecord

from .ledger import ShotRow

__all__ = ["experiment_frame", "result_document", "write_csv", "write_result"]


def shot_frame(sds_path: Path) -> bytes:
    """The archived shot's row of lyse's DataFrame, pickled for the ledger."""
    from lyse.dataframe_utilities import get_dataframe_from_shot

    headless()  # the suite's import installed its Tk exception hook
    return pickle.dumps(get_dataframe_from_shot(str(sds_path)))


def experiment_frame(rows: Iterable[ShotRow]) -> Any:
    from lyse.dataframe_utilities import concat_with_padding

    frames = [
        pickle.loads(row.frame) for row in rows if row.frame is not None
    ]  # our own ledger's bytes
    return concat_with_padding(*frames)


def write_csv(frame: Any, path: Path) -> None:
    text = io.StringIO()
    frame.to_csv(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.getvalue().encode())


def result_document(
    backend: Backend, job_id: str, experiments: list[ExperimentRecord], rows: list[ShotRow]
) -> dict[str, Any]:
    by_experiment: dict[str, list[ShotRow]] = {}
    for row in rows:
        if row.experiment is not None:
            by_experiment.setdefault(row.experiment, []).append(row)
    results = []
    for experiment in experiments:
        shots = sorted(
            by_experiment.get(experiment.name, []), key=lambda r: (r.shot_index or 0, r.address)
        )
        results.append(
            {
                "header": {"name": experiment.name},
                "shots": len(shots),
                "success": True,
                "data": {"memory": [row.memory or "" for row in shots]},
            }
        )
    return {
        "backend_name": backend.name,
        "backend_version": backend.version,
        "job_id": job_id,
        "qobj_id": None,
        "success": True,
        "status": "finished",
        "header": {},
        "display_name": backend.display_name,
        "results": results,
    }


def write_result(document: dict[str, Any], path: Path) -> None:
    write_atomic(path, json.dumps(document, indent=1).encode() + b"\n")
