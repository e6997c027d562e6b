#!/usr/bin/env bash
# Build the documentation into docs/_build/html, offline, every warning an error.
#   scripts/docs.sh [OUTDIR]
# The policy, CLI, result and settings references are generated at build time from the code
# (docs/_ext/): a changed option or schema shows up without editing a page.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || { echo "docs.sh: $PY missing: run scripts/bootstrap.sh first" >&2; exit 2; }
OUT="${1:-docs/_build/html}"
SRC="${AISEC_DOCS_SRC:-docs}"   # another source tree (tests build a changed copy)
export KERAS_BACKEND="${KERAS_BACKEND:-torch}"
# -E: fresh environment (generated pages depend on code, not only on .md files); -n: nitpicky;
# -W --keep-going: every warning fails the build, all of them reported; -j 1: CI runners are small.
exec "$PY" -m sphinx -b html -E -a -n -W --keep-going -j 1 -q -d "${OUT%/}/../doctrees" "$SRC" "$OUT"
