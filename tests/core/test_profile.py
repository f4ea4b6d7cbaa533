"""The sandboxed labscript profile: ports, and children that stay in the sandbox.

Each check runs in a fresh interpreter: activate() must come before labscript_utils, and
this test process must never point the suite anywhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from spooler.core.labprofile import Ports, free_port

ASK_PROFILE = "import labscript_profile; print(labscript_profile.LABSCRIPT_SUITE_PROFILE)"


def test_ports_are_distinct_and_outside_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = list(vars(Ports.free()).values())
    assert len(set(ports)) == len(ports)
    assert all(20000 <= p < low for p in ports), ports
    taken = frozenset(range(20000, low - 5))
    assert free_port(taken) >= low - 5


def test_children_and_daemons_of_an_activated_process_use_its_profile(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    # a child; and a grandchild through an isolated (-I) launcher, as zprocess starts
    # the suite's servers: the launcher itself ignores PYTHONPATH, its child must not
    script = f"""
import subprocess, sys
from pathlib import Path
from spooler.core.labprofile import activate
activate(Path({str(profile)!r}))
ask = {ASK_PROFILE!r}
print(subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True).stdout, end="")
launcher = "import subprocess, sys; subprocess.run(sys.argv[1:])"
subprocess.run([sys.executable, "-I", "-c", launcher, sys.executable, "-c", ask], cwd="/")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd="/"
    ).stdout.split()
    assert out == [str(profile), str(profile)]
    assert (profile / "labspool-site" / "sitecustomize.py").exists()
