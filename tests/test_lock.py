"""The lock files of requirements/ (made by scripts/lock): still the lock of today's inputs.

A lock is stale when pyproject.toml's requires-python, dependencies or optional-dependencies
(or, for the client's lock, tests/client/requirements.txt) changed since it was made: its
header's inputs-sha256 is no longer the digest that ``scripts/lock --digest`` computes; or when
a requirement of pyproject is not met by the version the lock pins. The tests also check what
scripts/_venv.sh and scripts/client_venv.sh rely on: every pin has hashes, pip is pinned, the
lab lock has the versions of the lab-and-test lock. No network: only the files are read.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
# the lock's platform: CPython 3.11 on Linux x86_64 (scripts/lock)
ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "extra": "",
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(path: Path) -> dict[str, str]:
    """The lock's pins, name (canonical) -> version."""
    found = (PIN.match(line) for line in path.read_text(encoding="utf-8").splitlines())
    return {canonicalize_name(match[1]): match[2] for match in found if match}


def hashes(path: Path) -> dict[str, int]:
    """How many --hash options each pin of the lock has."""
    counts: dict[str, int] = {}
    name = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            counts[name] = 0
        if name and "--hash=sha256:" in line:
            counts[name] += 1
    return counts


def header(path: Path) -> dict[str, str]:
    """The lock's header lines ``# key: value`` (inputs-sha256, python, made)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].strip().partition(": ")
        found[key] = value
    return found


@functools.cache
def digests() -> dict[str, str]:
    """The digests of today's inputs, as scripts/lock records them ('pyproject', 'client')."""
    made = subprocess.run(
        ["bash", str(ROOT / "scripts" / "lock"), "--digest"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(line.split(" ", 1) for line in made.stdout.splitlines())


@pytest.mark.parametrize(
    ("lock", "inputs"),
    [("lab-test.txt", "pyproject"), ("lab.txt", "pyproject"), ("client.txt", "client")],
)
def test_lock_made_from_todays_inputs(lock: str, inputs: str) -> None:
    made = header(LOCKS / lock)
    assert made.get("inputs-sha256") == digests()[inputs], (
        f"requirements/{lock} is stale: its inputs changed since it was made"
        f" ({made.get('made')}); run scripts/lock, then scripts/test"
    )
    assert made.get("python", "").startswith("3.11 ")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", made.get("made", ""))


@pytest.mark.parametrize(
    ("lock", "extras"), [("lab-test.txt", ["lab", "test"]), ("lab.txt", ["lab"])]
)
def test_pins_meet_pyproject(lock: str, extras: list[str]) -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    pinned = pins(LOCKS / lock)
    unmet = []
    for text in wanted:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(ENVIRONMENT):
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unmet.append(f"{text} (locked: {version or 'not at all'})")
    assert not unmet, f"requirements/{lock} is stale (run scripts/lock): {', '.join(unmet)}"


def test_lab_lock_has_the_versions_of_the_lab_test_lock() -> None:
    lab, lab_test = pins(LOCKS / "lab.txt"), pins(LOCKS / "lab-test.txt")
    differ = {name: version for name, version in lab.items() if lab_test.get(name) != version}
    assert not differ, f"requirements/lab.txt is not lab-test.txt's (run scripts/lock): {differ}"


def test_client_lock_has_the_client_pins() -> None:
    locked = pins(LOCKS / "client.txt")
    wanted = pins(ROOT / "tests" / "client" / "requirements.txt")
    assert wanted
    differ = {name: (version, locked.get(name)) for name, version in wanted.items()}
    differ = {name: versions for name, versions in differ.items() if versions[0] != versions[1]}
    assert not differ, f"requirements/client.txt is stale (run scripts/lock): {differ}"


@pytest.mark.parametrize("lock", ["lab-test.txt", "lab.txt", "client.txt"])
def test_every_pin_has_hashes_and_pip_is_pinned(lock: str) -> None:
    counts = hashes(LOCKS / lock)
    assert counts.keys() == pins(LOCKS / lock).keys()
    assert [name for name, count in counts.items() if count == 0] == []
    # the venv scripts install pip first, at this version
    assert "pip" in counts
