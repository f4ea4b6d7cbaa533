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
from collections.abc import Iterable
from typing import Any

from spooler.core.store.reader import Reader, chunks
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
        return None if row is None else _document(row[0])

    @staticmethod
    def of_each(view: Reader, jobs: Iterable[tuple[str, int]]) -> dict[str, dict[str, Any]]:
        """The provenance of each of *jobs* (job id, attempt: a page's), as :meth:`of` says
        it, in one statement per page of job ids (the primary key); a job without one is
        left out."""
        attempts = dict(jobs)
        found: dict[str, dict[str, Any]] = {}
        for part in chunks(attempts):
            rows = view.execute(
                "SELECT job_id, attempt, document FROM provenance "
                f"WHERE job_id IN ({', '.join('?' for _ in part)})",
                tuple(part),
            )
            for job_id, attempt, text in rows:
                document = _document(text) if attempts.get(job_id) == attempt else None
                if document is not None:
                    found[job_id] = document
        return found


def _document(text: str) -> dict[str, Any] | None:
    """A stored document, if it is a JSON object."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
