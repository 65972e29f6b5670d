# Sourced by scripts/test and scripts/build-book: create or refresh .venv from the
# pinned lock file (requirements/lock.txt) and install hypercore in editable mode.
# Needs only python3.11 (with venv) on a fresh Debian machine; no GPU, no internet
# beyond the package registry.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
STAMP="$VENV/.lock-stamp"
LOCK="$ROOT/requirements/lock.txt"
want="$(cat "$LOCK" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the pinned environment (requirements/lock.txt)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$LOCK"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$ROOT"
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
