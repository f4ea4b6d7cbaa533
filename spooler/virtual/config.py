"""The labspool configuration a virtual lab writes for itself: ``ROOT/labspool.yaml``.

It is the scaffold's tree for the backend (:func:`spooler.core.scaffold.write_tree`) with a
``lab`` section pointing at the lab's runmanager and profile, and the virtual machine's limit
on the states it evolves exactly.
"""

from __future__ import annotations

import re
from pathlib import Path

from spooler.core.fsutil import write_atomic
from spooler.core.scaffold import write_tree
from spooler.virtual.layout import LabLayout
from spooler.virtual.spins import STATES_MAX

__all__ = ["write_config"]


def write_config(
    layout: LabLayout,
    backend: str,
    runmanager_port: int,
    look_ahead_jobs: int | None,
    look_ahead_shots: int | None,
) -> Path:
    """Write the lab's labspool configuration (anew, with its new ports); returns its path."""
    config = layout.root / "labspool.yaml"
    if config.exists():
        config.unlink()  # a lab's configuration is the lab's; it is rewritten with new ports
    look_ahead = "".join(
        f"  {key}: {value}\n"
        for key, value in (
            ("look_ahead_jobs", look_ahead_jobs),
            ("look_ahead_shots", look_ahead_shots),
        )
        if value is not None
    )
    lab_section = f"""lab:
  kind: runmanager            # the virtual lab's runmanager (labspool lab up)
{look_ahead}  retry_interval_s: 1.0
  retry_interval_max_s: 10.0
  health_interval_s: 1.0      # the virtual machine is looked at every second
  stalled_after_s: 10.0       # its shots take a second at most: lost ones are seen soon
  shot_stuck_after_s: 20.0    # and so a shot that runs for 20 s is stuck
  labscript_profile: lab/profile
  runmanager:
    host: localhost
    port: {runmanager_port}
    timeout_s: 15.0
"""
    # the virtual machines evolve their atoms exactly: a job larger than that is refused
    config = write_tree(layout.root, backend, lab_section=lab_section)
    text = config.read_text(encoding="utf-8")
    text = re.sub(
        r"(?m)^  exact_states_max: null", f"  exact_states_max: {STATES_MAX}", text, count=1
    )
    write_atomic(config, text.encode())
    return config
