#!/usr/bin/env bash
# Make a venv at DIR with the released qiskit-cold-atom client (0.2.1) and the pins it needs
# on Python 3.11 (tests/client/requirements.txt), installed from their lock
# requirements/client.txt (the same pins, pip's and setuptools' too, with the SHA-256 of every
# file; scripts/lock makes it). Idempotent: nothing is done when DIR/.ok records the same
# requirements, lock and Python. Usage: scripts/client_venv.sh DIR
# (PYTHON=/path/to/python3.11 to choose the interpreter; Debian needs python3-venv).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$root/tests/client/requirements.txt"
lock="$root/requirements/client.txt"
dir="$1"
python="${PYTHON:-python3}"

# what DIR/.ok records: the interpreter's version, the exact requirements and the lock's digest
stamp="python $("$python" -c 'import sys; print(*sys.version_info[:3], sep=".")')
$(cat "$requirements")
lock $(sha256sum <"$lock" | cut -d' ' -f1)"
if [ -x "$dir/bin/python" ] && [ -f "$dir/.ok" ] && [ "$(cat "$dir/.ok")" = "$stamp" ]; then
    exit 0
fi

# a venv made anew: never clear a folder that is not one
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/pyvenv.cfg" ]; then
    echo "$dir exists and is not a venv; not touching it" >&2
    exit 1
fi
rm -f "$dir/.ok"
"$python" -m venv --clear "$dir"
# pip 24.1 refuses qiskit-nature 0.5's dependency specifier "qiskit-terra>=0.22.*": first
# pip itself at the lock's version (< 24.1), then every pin with its hashes checked
pip_pin="$dir/.pip-pin.txt"
awk '/^pip==/ { p = 1 } p { print } p && !/\\$/ { exit }' "$lock" >"$pip_pin"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r "$pip_pin"
rm -f "$pip_pin"
# wheels only: every pin has a wheel for CPython 3.11 on manylinux (no compiler needed)
# (pip 24.0 still warns about that specifier, once: a DEPRECATION line, expected)
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    --require-hashes -r "$lock"
"$dir/bin/python" -W ignore -c "
import qiskit_cold_atom
from qiskit_cold_atom.providers import ColdAtomProvider
from qiskit_cold_atom.fermions import FermionSimulator
from qiskit_cold_atom.spins import SpinSimulator
" || { echo "the client venv at $dir does not import qiskit_cold_atom" >&2; exit 1; }
printf '%s\n' "$stamp" >"$dir/.ok.tmp"
mv "$dir/.ok.tmp" "$dir/.ok"
