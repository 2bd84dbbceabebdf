#!/usr/bin/env bash
# Creates .venv with the runtime, the operator and the test tools installed (idempotent, quiet when done).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.spindle-deps
want=$(cat runtime/pyproject.toml runtime/setup.py operator/pyproject.toml requirements-test.txt runtime/spindle/_proto/*.proto 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -f runtime/spindle/_proto/spindle_pb2.py ]; then
  echo "==> installing spindle, spindle-operator and test tools into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-test.txt
  .venv/bin/python -m pip install -q -e runtime --config-settings editable_mode=compat
  .venv/bin/python -m pip install -q -e operator --config-settings editable_mode=compat
  echo "$want" > "$stamp"
fi
