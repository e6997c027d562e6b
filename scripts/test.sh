#!/usr/bin/env bash
# The whole test suite: unit, integration (real Airflow, OpenBao, moto S3, PostgreSQL, Redis, Celery),
# security, load, fuzz and browser tests. Extra arguments go to one pytest run instead
# (e.g. scripts/test.sh -m "not browser" -x).
#
# Without arguments the suite runs as two pytest sessions side by side: the service-heavy part
# (integration, security, UI) and the rest. Each session has its own Airflow home, OpenBao and moto
# server on free ports (tests/helpers), and the PostgreSQL databases and Celery queues the tests
# create are uniquely named, so the halves do not share state; most of their time is spent waiting
# on subprocesses, which is why two sessions on two cores finish in about half the wall time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
mkdir -p artifacts
PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider)
# pytest exits 5 when it collected nothing: that is a failure here, and set -e passes it on.
if [ "$#" -gt 0 ]; then
  exec "${PYTEST[@]}" "$@"
fi

SERVICES=(tests/integration tests/security tests/plugins)
services_log="artifacts/pytest-services.log"
# Each session gets its own base temp dir: pytest prunes all but the newest three numbered
# /tmp/pytest-of-$USER dirs, which would delete a running session's files when another one starts.
tmp_root="$(mktemp -d /tmp/aisec-pytest.XXXXXX)"
"${PYTEST[@]}" -q --basetemp="$tmp_root/services" "${SERVICES[@]}" >"$services_log" 2>&1 &
services_pid=$!
rest_rc=0
"${PYTEST[@]}" -q --basetemp="$tmp_root/rest" $(printf -- '--ignore=%s ' "${SERVICES[@]}") || rest_rc=$?
services_rc=0
wait "$services_pid" || services_rc=$?
echo "pytest exit codes: rest=$rest_rc, integration/security/UI=$services_rc"
echo "---- integration, security and UI tests (also in $services_log) ----"
cat "$services_log"
if [ "$rest_rc" -ne 0 ] || [ "$services_rc" -ne 0 ]; then
  exit 1
fi
