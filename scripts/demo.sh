#!/usr/bin/env bash
# The main job: set up (idempotent), then run the example secure pipeline and its tampered variant.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
AISEC_SERVICES=0 bash scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
