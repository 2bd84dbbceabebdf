#!/usr/bin/env bash
# The test command (README, .ci/run): installs what it needs, builds the Kubernetes test binaries, the kind
# node image and Spindle's images when they are not cached, runs ruff and mypy, then the whole pytest
# suite (the e2e tests bring up a kind cluster from those images). Extra args go to pytest.
# Prints how long each stage took at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
timings=()
stage_start=$SECONDS
stage_name=""
stage() {
  [[ -z $stage_name ]] || timings+=("$(printf '%5ds  %s' $((SECONDS - stage_start)) "$stage_name")")
  stage_name=$1
  stage_start=$SECONDS
  [[ -z $1 ]] || echo "==> $1"
}
report() {
  stage ""
  echo "==> stage times"
  printf '  %s\n' "${timings[@]}"
  echo "  total ${SECONDS}s"
}

stage "Python environment"
scripts/dev-env.sh
if ! command -v ip >/dev/null 2>&1; then
  echo "==> installing iproute2 (network-namespace tests)"
  apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium (the dashboard's browser tests; Playwright never downloads one)"
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
stage "Ray (its job client and CLI, for tests/jobs/test_ray_client.py; cached in ~/.cache/spindle-ray)"
.venv/bin/python tests/jobs/ray_venv.py
stage "Kubernetes test binaries"
scripts/build-k8s.sh
# A private dockerd (no iptables changes: the netns tests keep working); stopped again at exit if this
# run started it.
stage "Docker engine"
if ! scripts/dockerd.sh status; then
  scripts/dockerd.sh start
  trap 'scripts/dockerd.sh stop' EXIT
fi
stage "kind node binaries and image"
scripts/build-kind-node.sh >/dev/null
stage "Spindle images"
scripts/build-images.sh
. .venv/bin/activate
stage "ruff"
ruff check .
stage "mypy"
mypy runtime/spindle operator/spindle_operator
stage "pytest"
set +e
python -m pytest tests "$@"
rc=$?
set -e
report
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
