"""The result daemon's ledger: kept in the job store (:mod:`spooler.core.store.shots`)."""

from __future__ import annotations

from spooler.core.store.shots import Ledger, ShotRow

__all__ = ["Ledger", "ShotRow"]
