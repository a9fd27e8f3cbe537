#!/usr/bin/env bash
# Install Junction into ./.venv (first run only) and serve it on its embedded defaults.
# Extra arguments go to `junction serve` (e.g. --port 9000, --config junction.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/junction ] || [ pyproject.toml -nt .venv/.installed ]; then
  # Say what is happening before the minute the install takes; pip's own chatter goes to a log, shown if it fails.
  what=$("$PY" -c 'import re, tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(", ".join(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0] for d in deps))')
  echo "junction: installing Junction into .venv with what it needs ($what); this takes a minute or two, once" >&2
  started=$SECONDS
  [ -d .venv ] || "$PY" -m venv .venv
  log=.venv/install.log
  if ! { .venv/bin/pip install --quiet --upgrade pip && .venv/bin/pip install --quiet -e '.'; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "junction: the install failed (pip's output above, also in $log)" >&2
    exit 1
  fi
  touch .venv/.installed
  echo "junction: installed in $((SECONDS - started)) s (pip's output: $log); starting the hub" >&2
fi
exec .venv/bin/junction serve "$@"
