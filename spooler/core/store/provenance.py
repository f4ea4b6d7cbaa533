"""What a job's result was made with (the table ``provenance``): named queries.

A row per job and attempt: the JSON object the result daemon wrote into the result file's
header as ``provenance`` (the labspool version, the backend, the SHA-256 of the apparatus
header and of the connection table, the routines' versions, when the shots were made:
:mod:`result.provenance`). The result daemon writes it with the job's outputs, again when
``labspool-result reprocess`` rewrites them; the status file of a ``DONE`` job shows it
(:mod:`spooler.core.statusfile`), so that both daemons' status files say the same.
"""

from __future__ import annotations

import json
from typing import Any

from spooler.core.store.reader import Reader
from spooler.core.store.transaction import Transaction

__all__ = ["Provenance"]


class Provenance:
    """The queries of the jobs' provenance; each takes the view it runs in."""

    @staticmethod
    def record(tx: Transaction, job_id: str, attempt: int, document: dict[str, Any]) -> None:
        """*document* is the attempt's provenance now (an earlier one is replaced); the job's
        status file is rendered again after the transaction."""
        tx.execute(
            "INSERT OR REPLACE INTO provenance (job_id, attempt, document, written_at) "
            "VALUES (?, ?, ?, ?)",
            (job_id, attempt, json.dumps(document, sort_keys=True), tx.now),
        )
        tx.touched[job_id] = None

    @staticmethod
    def of(view: Reader, job_id: str, attempt: int) -> dict[str, Any] | None:
        """The attempt's provenance (None: none was written, or it is not a JSON object)."""
        row = view.execute(
            "SELECT document FROM provenance WHERE job_id = ? AND attempt = ?", (job_id, attempt)
        ).fetchone()
        if row is None:
            return None
        try:
            document = json.loads(row[0])
        except ValueError:
            return None
        return document if isinstance(document, dict) else None
