#!/usr/bin/env bash
# The test command (README, .ci/run): installs what it needs, builds the Kubernetes test binaries
# when they are not cached, runs ruff and mypy, then the whole pytest suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/dev-env.sh
if ! command -v ip >/dev/null 2>&1; then
  echo "==> installing iproute2 (network-namespace tests)"
  apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
fi
echo "==> Kubernetes test binaries"
scripts/build-k8s.sh
. .venv/bin/activate
echo "==> ruff"
ruff check .
echo "==> mypy"
mypy runtime/spindle operator/spindle_operator
echo "==> pytest"
set +e
python -m pytest tests "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
