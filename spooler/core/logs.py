"""Logging with the job id in every line.

Every record carries a ``job_id`` attribute (``-`` when a line concerns no single job);
use :func:`for_job` to get a logger that fills it in.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["FORMAT", "for_job", "setup_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(job_id)s] %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s [%(job_id)s] %(message)s"


class _JobIdDefault(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = "-"
        return True


class JobLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("extra", {}).update(self.extra or {})
        return msg, kwargs


def for_job(logger: logging.Logger, job_id: str) -> JobLogger:
    return JobLogger(logger, {"job_id": job_id})


def setup_logging(level: str = "INFO", *, journal: bool = False) -> None:
    """Log to stderr; under systemd (``journal=True``) without the time, which journald adds."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobIdDefault())
    handler.setFormatter(logging.Formatter(JOURNAL_FORMAT if journal else FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
