#!/usr/bin/env bash
# The whole test suite: unit, integration (real Airflow, OpenBao, moto S3, PostgreSQL, Redis, Celery)
# and browser tests. Extra arguments go to pytest (e.g. scripts/test.sh -m "not browser" -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
mkdir -p artifacts
# pytest exits 5 when it collected nothing: that is a failure here, and set -e passes it on.
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
