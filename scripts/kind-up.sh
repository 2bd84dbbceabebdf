#!/usr/bin/env bash
# A local Kubernetes cluster with Spindle's operator running in it, built entirely on this machine:
# starts Spindle's private dockerd (scripts/dockerd.sh), builds or loads the kind node image
# (scripts/build-kind-node.sh) and Spindle's images (scripts/build-images.sh), creates the kind cluster
# from kind-config.yaml, loads the images into it and `helm upgrade --install`s charts/spindle-operator.
# Everything is cached under ~/.cache, so a second run takes a minute or two.
#
#   scripts/kind-up.sh                    cluster "spindle", kubeconfig ~/.kube/config (kind's default)
#   scripts/kind-up.sh --name NAME --kubeconfig PATH [--no-operator]
#
# Then:  eval "$(scripts/kind-up.sh --print-env)"   # DOCKER_HOST and PATH for kind, kubectl and helm
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
NAME=spindle
KUBECONFIG_PATH=${KUBECONFIG:-$HOME/.kube/config}
OPERATOR=1
NAMESPACE=spindle-system

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
log() { echo "[kind-up $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "[kind-up] ERROR: $*" >&2; exit 1; }

print_env=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --name) NAME=${2:?}; shift 2 ;;
        --kubeconfig) KUBECONFIG_PATH=${2:?}; shift 2 ;;
        --no-operator) OPERATOR=0; shift ;;
        --print-env) print_env=1; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done

K8S_BIN=$(scripts/build-k8s.sh --print-bin-dir)
KIND_BIN=$(scripts/build-kind-bins.sh --print-bin-dir)
if [[ $print_env == 1 ]]; then
    scripts/dockerd.sh env
    echo "export PATH=$KIND_BIN:$K8S_BIN:\$PATH"
    exit 0
fi
eval "$(scripts/dockerd.sh env)"
export PATH=$KIND_BIN:$K8S_BIN:$PATH
export KUBECONFIG=$KUBECONFIG_PATH

start=$SECONDS
scripts/dockerd.sh start
node_image=$(scripts/build-kind-node.sh)
[[ -x .venv/bin/python ]] || scripts/dev-env.sh
scripts/build-images.sh
read -r -a images < <(scripts/build-images.sh --print)
log "images ready after $((SECONDS - start))s"

if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
    log "kind cluster $NAME exists; reusing it (scripts/kind-down.sh --name $NAME removes it)"
    kind export kubeconfig --name "$NAME" --kubeconfig "$KUBECONFIG_PATH" >&2
else
    log "kind create cluster --name $NAME ($node_image)"
    t=$SECONDS
    kind create cluster --name "$NAME" --config kind-config.yaml --image "$node_image" \
        --kubeconfig "$KUBECONFIG_PATH" --wait 5m >&2 || die "kind create cluster failed (output above)"
    log "cluster created in $((SECONDS - t))s"
fi
log "loading ${images[*]} into $NAME"
kind load docker-image --name "$NAME" "${images[@]}" >&2

if [[ $OPERATOR == 1 ]]; then
    log "helm upgrade --install spindle-operator (namespace $NAMESPACE)"
    helm upgrade --install spindle-operator charts/spindle-operator --namespace "$NAMESPACE" \
        --create-namespace --wait --timeout 5m >&2 \
        || { kubectl -n "$NAMESPACE" describe pods >&2; kubectl -n "$NAMESPACE" logs deploy/spindle-operator --tail 50 >&2 || true
             die "the operator did not become ready (pods described above)"; }
fi
log "ready in $((SECONDS - start))s. Try:"
cat >&2 <<TXT
  eval "\$(scripts/kind-up.sh --print-env)"
  kubectl apply -f manifests/samples/minimal.yaml
  kubectl get spc -w
TXT
