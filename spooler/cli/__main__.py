"""``python -m spooler.cli``: as the ``labspool`` command."""

from __future__ import annotations

import sys

from spooler.cli.main import main

sys.exit(main())
