#!/usr/bin/env bash
# Install Junction into ./.venv (first run only) and serve it on its embedded defaults.
# Extra arguments go to `junction serve` (e.g. --port 9000, --config junction.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/junction ] || [ pyproject.toml -nt .venv/.installed ]; then
  [ -d .venv ] || "$PY" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.'
  touch .venv/.installed
fi
exec .venv/bin/junction serve "$@"
