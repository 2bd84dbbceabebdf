#!/usr/bin/env bash
# Removes the kind cluster scripts/kind-up.sh created; with --stop-docker also stops Spindle's private
# dockerd (images stay in its data root and under ~/.cache, so the next kind-up is quick).
#
#   scripts/kind-down.sh [--name NAME] [--kubeconfig PATH] [--stop-docker]
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=spindle
KUBECONFIG_PATH=${KUBECONFIG:-$HOME/.kube/config}
STOP_DOCKER=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --name) NAME=${2:?}; shift 2 ;;
        --kubeconfig) KUBECONFIG_PATH=${2:?}; shift 2 ;;
        --stop-docker) STOP_DOCKER=1; shift ;;
        -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
eval "$(scripts/dockerd.sh env)"
KIND=$(scripts/build-kind-bins.sh --print-bin-dir)/kind
if scripts/dockerd.sh status && [[ -x $KIND ]]; then
    if "$KIND" get clusters 2>/dev/null | grep -qx "$NAME"; then
        "$KIND" delete cluster --name "$NAME" --kubeconfig "$KUBECONFIG_PATH"
    else
        echo "[kind-down] no kind cluster named $NAME"
    fi
fi
[[ $STOP_DOCKER == 0 ]] || scripts/dockerd.sh stop
