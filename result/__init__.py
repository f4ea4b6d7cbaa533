"""labspool's result daemon: finished shots to analysed, archived shots and result files.

It depends on :mod:`spooler` for the job model; the spooler never imports it.
"""

from __future__ import annotations
