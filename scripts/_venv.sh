# Sourced by the scripts: make .venv with labspool and the given extras installed (idempotent),
# every package at the version of the lock requirements/EXTRAS.txt (made by scripts/lock).
# Usage: . scripts/_venv.sh EXTRAS   (e.g. "lab", whose lock is requirements/lab.txt, or
# "lab,test": requirements/lab-test.txt)
labspool_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
labspool_venv="$labspool_root/.venv"
labspool_python="${PYTHON:-python3}"
labspool_lock="$labspool_root/requirements/${1//,/-}.txt"
if ! "$labspool_python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "labspool needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ ! -f "$labspool_lock" ]; then
    echo "no lock for the extras $1: $labspool_lock (scripts/lock makes the locks)" >&2
    exit 1
fi
if [ ! -x "$labspool_venv/bin/python" ]; then
    "$labspool_python" -m venv "$labspool_venv"
fi

# pip in the venv, its warnings about index locations that some machines configure but lack
# dropped; returns pip's exit status
labspool_pip() {
    "$labspool_venv/bin/python" -m pip "$@" 2>&1 | grep -v "^WARNING: Location" >&2
    return "${PIPESTATUS[0]}"
}

# Installed anew when pyproject.toml or the lock changed: the stamp records their SHA-256.
stamp="$labspool_venv/.installed-$1"
labspool_inputs="$(cat "$labspool_root/pyproject.toml" "$labspool_lock" | sha256sum)"
if [ ! -e "$stamp" ] || [ "$(cat "$stamp")" != "$labspool_inputs" ]; then
    if "$labspool_venv/bin/python" -c 'import platform, sys
sys.exit(sys.version_info[:2] != (3, 11) or platform.python_implementation() != "CPython"
         or sys.platform != "linux" or platform.machine() != "x86_64")'; then
        # The lock's platform: first pip itself at the locked version, then every package
        # with its hashes checked, then labspool, editable, on its own (its dependencies are
        # the lock's).
        labspool_pip_pin="$labspool_venv/.pip-pin.txt"
        awk '/^pip==/ { p = 1 } p { print } p && !/\\$/ { exit }' "$labspool_lock" \
            >"$labspool_pip_pin"
        { labspool_pip install --quiet --require-hashes -r "$labspool_pip_pin" &&
            labspool_pip install --quiet --require-hashes -r "$labspool_lock" &&
            labspool_pip install --quiet --no-deps -e "$labspool_root"; } ||
            { echo "installing labspool from $labspool_lock failed" >&2; exit 1; }
        rm -f "$labspool_pip_pin"
    else
        # Another Python or platform than the lock's (CPython 3.11, Linux x86_64): the lock's
        # versions as constraints (without their hashes, which pip cannot take as constraints
        # of an editable install); what it lacks for this platform is resolved freely.
        echo "note: the lock is for CPython 3.11 on Linux x86_64; here its versions are" \
            "constraints only" >&2
        labspool_constraints="$labspool_venv/.constraints.txt"
        sed -n 's/^\([A-Za-z0-9._-]*==[^ ;\\]*\).*/\1/p' "$labspool_lock" \
            >"$labspool_constraints"
        { labspool_pip install --quiet -c "$labspool_constraints" pip &&
            labspool_pip install --quiet -c "$labspool_constraints" -e "${labspool_root}[$1]"; } ||
            { echo "installing labspool constrained by $labspool_lock failed" >&2; exit 1; }
    fi
    "$labspool_venv/bin/python" -c "import spooler" || { echo "installing labspool failed" >&2; exit 1; }
    printf '%s\n' "$labspool_inputs" >"$stamp"
fi
export PATH="$labspool_venv/bin:$PATH"
