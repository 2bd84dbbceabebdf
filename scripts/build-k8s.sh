#!/usr/bin/env bash
# Builds the Kubernetes binaries the k8s-marked tests run against a real API server (no kubelet):
# kube-apiserver, kube-controller-manager, kubectl, etcd and helm, all from Go modules through the Go
# module proxy (the only source of Kubernetes reachable from CI), cached under
# ~/.cache/spindle-k8s/<k8s-version>/bin/. Does nothing when every binary is already there.
#
#   scripts/build-k8s.sh                 build what is missing
#   scripts/build-k8s.sh --print-bin-dir print the cache's bin dir (tests/kube_harness reads it)
#
# Env: SPINDLE_K8S_CACHE (default ~/.cache/spindle-k8s), SKIP_HELM=1 to leave helm out.
set -euo pipefail

K8S_VERSION=v1.36.3   # k8s.io/kubernetes; its staging modules are v0.<minor>.<patch>
ETCD_VERSION=v3.6.16  # go.etcd.io/etcd/server/v3, the 3.6 line Kubernetes 1.36 is tested against
HELM_VERSION=v3.22.0  # helm.sh/helm/v3

CACHE_ROOT=${SPINDLE_K8S_CACHE:-$HOME/.cache/spindle-k8s}
BIN_DIR=$CACHE_ROOT/$K8S_VERSION/bin

if [[ ${1:-} == --print-bin-dir ]]; then
    echo "$BIN_DIR"
    exit 0
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--print-bin-dir]" >&2
    exit 2
fi

log() { echo "[build-k8s $(date -u +%H:%M:%S)] $*"; }
die() { echo "[build-k8s] ERROR: $*" >&2; exit 1; }

BINARIES=(kube-apiserver kube-controller-manager kubectl etcd)
[[ ${SKIP_HELM:-0} == 1 ]] || BINARIES+=(helm)

missing=()
for b in "${BINARIES[@]}"; do
    [[ -x $BIN_DIR/$b ]] || missing+=("$b")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    log "all present in $BIN_DIR: ${BINARIES[*]} (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION)"
    exit 0
fi

GO=$(command -v go || true)
[[ -n $GO ]] || GO=/usr/local/go/bin/go
[[ -x $GO ]] || die "go not found on PATH nor at /usr/local/go/bin/go; install Go >= 1.26 first"

mkdir -p "$BIN_DIR"
# Two test runs starting at once must not build twice into the same place.
exec 9>"$CACHE_ROOT/.build.lock"
if ! flock -n 9; then
    log "another build holds $CACHE_ROOT/.build.lock; waiting for it"
    flock 9
fi
missing=()
for b in "${BINARIES[@]}"; do
    [[ -x $BIN_DIR/$b ]] || missing+=("$b")
done
[[ ${#missing[@]} -gt 0 ]] || { log "all present in $BIN_DIR after waiting"; exit 0; }
log "building into $BIN_DIR: ${missing[*]} (takes 15-40 min on 2 cores the first time)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/spindle-k8s-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
GOBUILD=(nice -n 10 "$GO" build -trimpath)

want() { [[ " ${missing[*]} " == *" $1 "* ]]; }
# Each binary lands in $WORK/out first and is moved in when done, so a half build never looks cached.
install_bin() { mv -f "$WORK/out/$1" "$BIN_DIR/$1"; log "installed $BIN_DIR/$1"; }
mkdir -p "$WORK/out"

build_kubernetes() {
    local targets=() b
    for b in kube-apiserver kube-controller-manager kubectl; do want "$b" && targets+=("$b"); done
    [[ ${#targets[@]} -gt 0 ]] || return 0
    local mod=$WORK/kubernetes minor patch staging
    mkdir -p "$mod"
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    patch=$(echo "$K8S_VERSION" | cut -d. -f3)
    log "fetching k8s.io/kubernetes@$K8S_VERSION's go.mod"
    local gomod
    gomod=$(cd "$mod" && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p') \
        || die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
    # k8s.io/kubernetes replaces its staging modules with ./staging/src/...; only the main module's
    # replaces count, so pin each of them here to its published v0.<minor>.<patch>.
    staging=$(sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/src/.*#\1#p' "$gomod")
    [[ -n $staging ]] || die "found no staging replaces in $gomod"
    {
        echo "module spindle.test/k8sbuild"
        echo "go 1.26"
        echo "require k8s.io/kubernetes $K8S_VERSION"
        for m in $staging; do echo "replace $m => $m v0.$minor.$patch"; done
    } >"$mod/go.mod"
    local ldflags="-s -w"
    local v
    for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
        ldflags+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
    done
    for b in "${targets[@]}"; do
        log "go build $b (k8s.io/kubernetes $K8S_VERSION)"
        (cd "$mod" && "${GOBUILD[@]}" -ldflags "$ldflags" -o "$WORK/out/$b" "k8s.io/kubernetes/cmd/$b") \
            || die "building $b failed (see the go output above)"
        install_bin "$b"
    done
}

build_etcd() {
    want etcd || return 0
    local mod=$WORK/etcd m
    mkdir -p "$mod"
    # go.etcd.io/etcd/server/v3 replaces its sibling modules with ../, so it cannot be `go install`ed
    # at a version; require the siblings at the same version instead.
    {
        echo "module spindle.test/etcdbuild"
        echo "go 1.26"
        for m in server/v3 api/v3 client/pkg/v3 client/v3 pkg/v3; do
            echo "require go.etcd.io/etcd/$m $ETCD_VERSION"
        done
    } >"$mod/go.mod"
    log "go build etcd $ETCD_VERSION"
    (cd "$mod" && "${GOBUILD[@]}" -ldflags "-s -w" -o "$WORK/out/etcd" go.etcd.io/etcd/server/v3) \
        || die "building etcd failed (see the go output above)"
    install_bin etcd
}

build_helm() {
    want helm || return 0
    local mod=$WORK/helm
    mkdir -p "$mod"
    printf 'module spindle.test/helmbuild\ngo 1.26\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" >"$mod/go.mod"
    log "go build helm $HELM_VERSION"
    (cd "$mod" && "${GOBUILD[@]}" -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
        -o "$WORK/out/helm" helm.sh/helm/v3/cmd/helm) \
        || die "building helm failed (see the go output above); SKIP_HELM=1 leaves it out"
    install_bin helm
}

start=$SECONDS
build_etcd
build_kubernetes
build_helm
log "done in $((SECONDS - start))s: $BIN_DIR"
