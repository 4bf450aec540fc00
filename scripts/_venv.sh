# Sourced by scripts/demo and scripts/test: create .venv and install the project once per pyproject change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${OTEL_METRICS_VENV:-$ROOT/.venv}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    # A pyenv shim exists for every version pyenv knows, and prints "command not found" when that version is not
    # selected: the probe's own output is noise, only its exit status matters.
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
      PY="$candidate"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "otel-metrics needs Python 3.11 or newer on PATH" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.otel-metrics-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)-${EXTRAS:-dev}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[${EXTRAS:-dev}]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
