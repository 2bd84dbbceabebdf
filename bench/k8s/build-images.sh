#!/usr/bin/env bash
# Builds what the KubeRay side of the Kubernetes benchmark needs, with no container registry:
#   kuberay-operator:<v>   KubeRay's operator, `go install`ed from its Go module (cached by version)
#   ray:<ray version>      Ray from PyPI wheels on Debian minbase, built like Spindle's runtime image
# and prints the directory of KubeRay's module source (its CRDs and RBAC are read from there).
#
#   bench/k8s/build-images.sh [--ray-version 2.60.0]
#
# Env: DOCKER_HOST (default: Spindle's private daemon), SPINDLE_IMAGE_CACHE, SPINDLE_KUBERAY_CACHE.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
KUBERAY_VERSION=v1.5.0
RAY_VERSION=2.60.0
while [[ $# -gt 0 ]]; do
    case $1 in
        --ray-version) RAY_VERSION=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
CACHE=${SPINDLE_IMAGE_CACHE:-$HOME/.cache/spindle-images}
KCACHE=${SPINDLE_KUBERAY_CACHE:-$HOME/.cache/spindle-kuberay}/$KUBERAY_VERSION
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
log() { echo "[bench-k8s-images $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "[bench-k8s-images] ERROR: $*" >&2; exit 1; }

[[ -n ${DOCKER_HOST:-} ]] || eval "$(scripts/dockerd.sh env)"
docker version >/dev/null 2>&1 || scripts/dockerd.sh start >&2

GO=$(command -v go || echo /usr/local/go/bin/go)
[[ -x $GO ]] || die "go not found: install Go >= 1.24 to build KubeRay's operator"
mkdir -p "$KCACHE/bin"
if [[ ! -x $KCACHE/bin/ray-operator ]]; then
    log "go install github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION (several minutes, once)"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && GOBIN=$KCACHE/bin CGO_ENABLED=0 GOFLAGS=-mod=mod \
        "$GO" install "github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION") >&2 \
        || die "building KubeRay's operator failed"
fi
MODDIR=$("$GO" env GOMODCACHE)/github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION
[[ -d $MODDIR/config/crd/bases ]] || (cd "$(mktemp -d)" && "$GO" mod download -x \
    "github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION" >&2)

base=$(scripts/debian-rootfs.sh spindle-base/python python3 python-is-python3 tini ca-certificates)
base_ray=$(scripts/debian-rootfs.sh spindle-base/python-wget python3 python-is-python3 tini ca-certificates wget)

build() {  # <image ref> <context dir> <base>
    local ref=$1 ctx=$2 from=$3 hash
    hash=$( { echo "$from"; find "$ctx" -type f -print0 | sort -z | xargs -0 sha256sum | awk '{print $1}'; } \
        | sha256sum | cut -c1-16)
    if [[ $(docker image inspect -f '{{index .Config.Labels "dev.spindle.content-hash"}}' "$ref" 2>/dev/null) \
            == "$hash" ]]; then
        log "$ref is current"; return 0
    fi
    log "docker build $ref"
    DOCKER_BUILDKIT=0 docker build -q --rm --force-rm --build-arg "BASE=$from" --build-arg "CONTENT_HASH=$hash" \
        -t "$ref" "$ctx" >/dev/null || die "docker build of $ref failed"
    log "built $ref ($(docker image inspect -f '{{.Size}}' "$ref" | awk '{printf "%.0f MB", $1/1e6}'))"
}

ctx=$(mktemp -d "${TMPDIR:-/tmp}/bench-k8s.XXXXXX")
cp bench/k8s/images/kuberay/Dockerfile "$ctx/"
cp "$KCACHE/bin/ray-operator" "$ctx/"
build "kuberay-operator:$KUBERAY_VERSION" "$ctx" "$base"
rm -rf "$ctx"

wheels=$CACHE/wheels/ray-$RAY_VERSION
if [[ ! -f $wheels/.complete ]]; then
    rm -rf "$wheels"; mkdir -p "$wheels"
    log "pip download ray[default]==$RAY_VERSION and its dependencies (binary wheels) into $wheels"
    "$PYTHON" -m pip download -q --only-binary :all: -d "$wheels" "ray[default]==$RAY_VERSION" pip >&2 \
        || die "pip download of ray $RAY_VERSION failed"
    touch "$wheels/.complete"
fi
ctx=$(mktemp -d "${TMPDIR:-/tmp}/bench-k8s.XXXXXX")
cp bench/k8s/images/ray/Dockerfile "$ctx/"
sed "s/^import spindle as ray$/import ray/" examples/primes.py > "$ctx/primes.py"  # the same program, for Ray
mkdir "$ctx/wheels"; cp "$wheels"/*.whl "$ctx/wheels/"; mv "$ctx"/wheels/pip-*.whl "$ctx/wheels/pip.whl"
build "ray:$RAY_VERSION" "$ctx" "$base_ray"
rm -rf "$ctx"
echo "$MODDIR"
