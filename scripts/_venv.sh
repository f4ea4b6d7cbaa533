# Sourced by the scripts: make .venv with labspool and the given extras installed (idempotent).
# Usage: . scripts/_venv.sh EXTRAS   (e.g. "lab" or "lab,test")
labspool_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
labspool_venv="$labspool_root/.venv"
labspool_python="${PYTHON:-python3}"
if ! "$labspool_python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "labspool needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ ! -x "$labspool_venv/bin/python" ]; then
    "$labspool_python" -m venv "$labspool_venv"
fi
stamp="$labspool_venv/.installed-$1"
if [ ! -e "$stamp" ] || [ "$labspool_root/pyproject.toml" -nt "$stamp" ]; then
    # (grep drops pip's warnings about index locations some machines configure but lack)
    "$labspool_venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$labspool_venv/bin/python" -m pip install --quiet -e "$labspool_root[$1]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$labspool_venv/bin/python" -c "import spooler" || { echo "installing labspool failed" >&2; exit 1; }
    touch "$stamp"
fi
export PATH="$labspool_venv/bin:$PATH"
