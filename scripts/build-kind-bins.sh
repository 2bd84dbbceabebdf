#!/usr/bin/env bash
# Builds the binaries a kind node needs beyond what scripts/build-k8s.sh already caches (that one gives
# kube-apiserver, kube-controller-manager, kubectl, etcd, helm): kubelet, kubeadm, kube-scheduler,
# kube-proxy, coredns, crictl, local-path-provisioner, pause, and kind itself. No container registry is
# reachable here, so every image of the node is built from these binaries; all come from Go modules
# through the Go module proxy (pause from images/kind/pause). Cached by version under
# ~/.cache/spindle-kind/<k8s-version>/bin/; does nothing when every binary is there.
#
#   scripts/build-kind-bins.sh                 build what is missing
#   scripts/build-kind-bins.sh --print-bin-dir print the cache's bin dir
#
# Env: SPINDLE_KIND_CACHE (default ~/.cache/spindle-kind).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

K8S_VERSION=v1.36.3          # same as scripts/build-k8s.sh (the API-server tests)
KIND_VERSION=v0.33.0         # sigs.k8s.io/kind
COREDNS_VERSION=v1.14.2      # what kubeadm 1.36 deploys
CRICTL_VERSION=v1.37.0       # sigs.k8s.io/cri-tools
LPP_VERSION=v0.0.30          # github.com/rancher/local-path-provisioner (kind's v0.0.34 pin is not served)

CACHE_ROOT=${SPINDLE_KIND_CACHE:-$HOME/.cache/spindle-kind}
BIN_DIR=$CACHE_ROOT/$K8S_VERSION/bin

if [[ ${1:-} == --print-bin-dir ]]; then
    echo "$BIN_DIR"
    exit 0
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--print-bin-dir]" >&2
    exit 2
fi

log() { echo "[build-kind-bins $(date -u +%H:%M:%S)] $*"; }
die() { echo "[build-kind-bins] ERROR: $*" >&2; exit 1; }

BINARIES=(kubelet kubeadm kind crictl pause kube-proxy kube-scheduler coredns local-path-provisioner)
missing_bins() {
    missing=()
    local b
    for b in "${BINARIES[@]}"; do [[ -x $BIN_DIR/$b ]] || missing+=("$b"); done
}
missing_bins
if [[ ${#missing[@]} -eq 0 ]]; then
    log "all present in $BIN_DIR"
    exit 0
fi

GO=$(command -v go || true)
[[ -n $GO ]] || GO=/usr/local/go/bin/go
[[ -x $GO ]] || die "go not found on PATH nor at /usr/local/go/bin/go; install Go >= 1.26 first"

mkdir -p "$BIN_DIR"
exec 9>"$CACHE_ROOT/.build.lock"
if ! flock -n 9; then
    log "another build holds $CACHE_ROOT/.build.lock; waiting for it"
    flock 9
fi
missing_bins
[[ ${#missing[@]} -gt 0 ]] || { log "all present in $BIN_DIR after waiting"; exit 0; }
log "building into $BIN_DIR: ${missing[*]} (15-30 min on 2 cores with an empty Go build cache)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/spindle-kind-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
GOBUILD=(nice -n 10 "$GO" build -trimpath)
mkdir -p "$WORK/out"

want() { [[ " ${missing[*]} " == *" $1 "* ]]; }
# A binary is moved into the cache only when its build finished, so a half build never looks cached.
install_bin() { mv -f "$WORK/out/$1" "$BIN_DIR/$1"; log "installed $BIN_DIR/$1"; }

# A throwaway main module that requires $2 at $3 (and lists extra go.mod lines on stdin).
wrapper_module() {
    local dir=$WORK/mod-$1
    mkdir -p "$dir"
    { echo "module spindle.test/$1"; echo "go 1.26"; echo "require $2 $3"; cat; } >"$dir/go.mod"
    echo "$dir"
}

build_kubernetes() {
    local targets=() b
    for b in kubelet kubeadm kube-proxy kube-scheduler; do want "$b" && targets+=("$b"); done
    [[ ${#targets[@]} -gt 0 ]] || return 0
    local minor patch gomod staging mod
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    patch=$(echo "$K8S_VERSION" | cut -d. -f3)
    mkdir -p "$WORK/probe"
    gomod=$(cd "$WORK/probe" && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
        | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p') \
        || die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
    # Only the main module's replaces count: pin every staging module to its v0.<minor>.<patch>.
    staging=$(sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/src/.*#\1#p' "$gomod")
    [[ -n $staging ]] || die "found no staging replaces in $gomod"
    mod=$(for m in $staging; do echo "replace $m => $m v0.$minor.$patch"; done \
        | wrapper_module kubernetes k8s.io/kubernetes "$K8S_VERSION")
    # kubeadm compares its own version with the control plane's: stamp the real one.
    local ldflags="-s -w" v
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

build_kind() {
    want kind || return 0
    log "go install sigs.k8s.io/kind@$KIND_VERSION"
    GOBIN=$WORK/out GOFLAGS=-buildvcs=false nice -n 10 "$GO" install -trimpath -ldflags "-s -w" \
        "sigs.k8s.io/kind@$KIND_VERSION" || die "go install sigs.k8s.io/kind@$KIND_VERSION failed"
    install_bin kind
}

build_crictl() {
    want crictl || return 0
    local mod
    mod=$(wrapper_module crictl sigs.k8s.io/cri-tools "$CRICTL_VERSION" </dev/null)
    log "go build crictl $CRICTL_VERSION"
    (cd "$mod" && "${GOBUILD[@]}" -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
        -o "$WORK/out/crictl" sigs.k8s.io/cri-tools/cmd/crictl) || die "building crictl failed"
    install_bin crictl
}

build_pause() {
    want pause || return 0
    local dir=$WORK/mod-pause
    mkdir -p "$dir"
    cp "$REPO/images/kind/pause/main.go" "$dir/"
    printf 'module spindle.test/pause\ngo 1.26\n' >"$dir/go.mod"
    log "go build pause (images/kind/pause)"
    (cd "$dir" && "${GOBUILD[@]}" -ldflags "-s -w" -o "$WORK/out/pause" .) || die "building pause failed"
    install_bin pause
}

build_coredns() {
    want coredns || return 0
    local mod
    mod=$(wrapper_module coredns github.com/coredns/coredns "$COREDNS_VERSION" </dev/null)
    log "go build coredns $COREDNS_VERSION"
    (cd "$mod" && "${GOBUILD[@]}" -ldflags "-s -w" -o "$WORK/out/coredns" github.com/coredns/coredns) \
        || die "building coredns failed"
    install_bin coredns
}

build_lpp() {
    want local-path-provisioner || return 0
    local mod
    mod=$(wrapper_module lpp github.com/rancher/local-path-provisioner "$LPP_VERSION" </dev/null)
    log "go build local-path-provisioner $LPP_VERSION"
    (cd "$mod" && "${GOBUILD[@]}" -ldflags "-s -w" -o "$WORK/out/local-path-provisioner" \
        github.com/rancher/local-path-provisioner) || die "building local-path-provisioner failed"
    install_bin local-path-provisioner
}

start=$SECONDS
build_pause
build_kind
build_crictl
build_kubernetes
build_coredns
build_lpp
log "done in $((SECONDS - start))s: $BIN_DIR"
