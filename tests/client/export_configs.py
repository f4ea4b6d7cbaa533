"""Write the configurations labspool serves the qiskit-cold-atom client, one per backend.

Runs in labspool's venv: ``python tests/client/export_configs.py`` writes
``tests/client/configs/<backend>.json`` (:func:`spooler.gateway.clientconfig.client_configuration`),
which ``make_jobs.py`` reads in the client's venv. ``tests/gateway/test_clientconfig.py`` checks
that
the files are up to date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spooler.core.backends import BACKENDS
from spooler.gateway.clientconfig import client_configuration

CONFIGS = Path(__file__).resolve().parent / "configs"


def exported(config: dict[str, Any]) -> str:
    """The text of one configuration file."""
    return json.dumps(config, indent=1, allow_nan=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export the client configurations.")
    parser.add_argument("--out", type=Path, default=CONFIGS, help="folder (default: %(default)s)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, backend in sorted(BACKENDS.items()):
        path = args.out / f"{name}.json"
        path.write_text(exported(client_configuration(backend)), encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
