#!/usr/bin/env bash
# Builds kind's node image for Kubernetes v1.36.3 without any container registry, cached by content:
#   1. binaries: scripts/build-k8s.sh (kube-apiserver, kube-controller-manager, kubectl, etcd, helm) and
#      scripts/build-kind-bins.sh (kubelet, kubeadm, kube-scheduler, kube-proxy, coredns, crictl,
#      local-path-provisioner, pause, kind), all from Go modules;
#   2. the node base image (images/kind/base) on a Debian bookworm rootfs with systemd, containerd, runc
#      and the CNI plugins from Debian (scripts/debian-rootfs.sh);
#   3. one image per Kubernetes component, each a binary on a small Debian rootfs (pause FROM scratch),
#      tagged with the names kubeadm and kind ask for, saved into a Kubernetes-release-shaped tarball;
#   4. `kind build node-image --type file` from that tarball.
# The node image is kept as a `docker save` archive under ~/.cache/spindle-kind/ so a fresh Docker data
# root loads it (about a minute) instead of rebuilding.
#
#   scripts/build-kind-node.sh          build or load what is missing; prints the node image reference
#
# Env: DOCKER_HOST (default: Spindle's private daemon), SPINDLE_KIND_CACHE (~/.cache/spindle-kind).
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$0")/.."
REPO=$PWD
K8S_VERSION=v1.36.3
CACHE_ROOT=${SPINDLE_KIND_CACHE:-$HOME/.cache/spindle-kind}
CACHE=$CACHE_ROOT/$K8S_VERSION
NODE_REPO=spindle-kind/node

log() { echo "[build-kind-node $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "[build-kind-node] ERROR: $*" >&2; exit 1; }

[[ -n ${DOCKER_HOST:-} ]] || eval "$(scripts/dockerd.sh env)"
docker version >/dev/null 2>&1 || scripts/dockerd.sh start

start=$SECONDS
scripts/build-k8s.sh >&2
scripts/build-kind-bins.sh >&2
K8S_BIN=$(scripts/build-k8s.sh --print-bin-dir)
KIND_BIN=$(scripts/build-kind-bins.sh --print-bin-dir)
KIND=$KIND_BIN/kind

# Everything the node image is made of; its hash names the image.
kind_dir=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$("$KIND" version | awk '{print $2}')" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[[ -d $kind_dir/images/base/files ]] || die "kind's module source (images/base/files) not found in the Go module cache"
NODE_PACKAGES=(systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz
    e2fsprogs bash ca-certificates curl jq procps containerd runc containernetworking-plugins)
COMPONENT_PACKAGES=(iptables nftables conntrack ipset iproute2 kmod ca-certificates)
node_rootfs=$(scripts/debian-rootfs.sh spindle-base/kind-node "${NODE_PACKAGES[@]}")
component_rootfs=$(scripts/debian-rootfs.sh spindle-base/k8s "${COMPONENT_PACKAGES[@]}")
hash=$( {
    echo "$node_rootfs $component_rootfs $K8S_VERSION"
    cat "$SELF" images/kind/base/*
    (cd "$kind_dir/images/base/files" && find . -type f | sort | xargs sha256sum)
    for b in "$K8S_BIN"/* "$KIND_BIN"/*; do echo "$(basename "$b") $(stat -c %s "$b")"; done
} | sha256sum | cut -c1-12)
NODE_IMAGE=$NODE_REPO:$K8S_VERSION-$hash
archive=$CACHE/node-$hash.tar

if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
    log "node image $NODE_IMAGE present"
    echo "$NODE_IMAGE"; exit 0
fi
if [[ -s $archive ]]; then
    log "loading $NODE_IMAGE from $archive"
    docker load -q -i "$archive" >&2 || die "docker load of $archive failed (delete it to rebuild)"
    log "loaded in $((SECONDS - start))s"
    echo "$NODE_IMAGE"; exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/spindle-kind-node.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# 2. the base image
base_image=spindle-kind/base:$hash
if ! docker image inspect "$base_image" >/dev/null 2>&1; then
    ctx=$WORK/base
    mkdir -p "$ctx"
    cp -r "$kind_dir/images/base/files" "$ctx/kind-files"
    chmod -R u+w "$ctx/kind-files"
    cp images/kind/base/ctr images/kind/base/10-spindle-ptp.conflist images/kind/base/Dockerfile "$ctx/"
    cp "$KIND_BIN/crictl" "$ctx/"
    log "docker build $base_image (from $node_rootfs)"
    DOCKER_BUILDKIT=0 docker build -q --build-arg "ROOTFS=$node_rootfs" -t "$base_image" "$ctx" >&2 \
        || die "building the node base image failed"
fi

# 3. component images under the names kubeadm and kind use
mapfile -t kubeadm_images < <("$KIND_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
[[ ${#kubeadm_images[@]} -gt 0 ]] || die "kubeadm config images list printed nothing"
sandbox=$(sed -n 's/.*sandbox_image = "\(.*\)"/\1/p' "$kind_dir/images/base/files/etc/containerd/config.toml")
kind_extra=$(sed -n 's/^const \(storageProvisionerImage\|storageHelperImage\) = "\(.*\)"/\2/p' \
    "$kind_dir"/pkg/build/nodeimage/const_storage.go)
image_binary() {  # image reference -> binary that provides it
    case $1 in
        */kube-apiserver:*) echo "$K8S_BIN/kube-apiserver" ;;
        */kube-controller-manager:*) echo "$K8S_BIN/kube-controller-manager" ;;
        */kube-scheduler:*) echo "$KIND_BIN/kube-scheduler" ;;
        */kube-proxy:*) echo "$KIND_BIN/kube-proxy" ;;
        */etcd:*) echo "$K8S_BIN/etcd" ;;
        */coredns:*) echo "$KIND_BIN/coredns" ;;
        */pause:*) echo "$KIND_BIN/pause" ;;
        */local-path-provisioner:*) echo "$KIND_BIN/local-path-provisioner" ;;
        */local-path-helper:*) echo "" ;;   # a shell for helper pods: the rootfs alone
        *) die "no binary known for image $1" ;;
    esac
}
declare -A archive_of=()
for image in "${kubeadm_images[@]}" "$sandbox" $kind_extra; do
    bin=$(image_binary "$image")
    ctx=$WORK/img-$(echo "$image" | tr -c 'a-zA-Z0-9\n' '_')
    mkdir -p "$ctx"
    name=$(basename "${bin:-sh}")
    if [[ $name == pause ]]; then
        printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
    elif [[ -n $bin ]]; then
        # coredns' Deployment passes only args and relies on the image's entrypoint (/coredns upstream).
        printf 'FROM %s\nCOPY %s /usr/local/bin/%s\nRUN ln -s /usr/local/bin/%s /%s\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
            "$component_rootfs" "$name" "$name" "$name" "$name" "$name" >"$ctx/Dockerfile"
    else
        printf 'FROM %s\nCMD ["/bin/sh"]\n' "$component_rootfs" >"$ctx/Dockerfile"
    fi
    [[ -z $bin ]] || cp "$bin" "$ctx/$name"
    log "image $image <- ${bin:-$component_rootfs}"
    DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null || die "building $image failed"
    # kind loads every archive it finds; group the extra images into the four it knows.
    case $image in
        */kube-controller-manager:*) group=kube-controller-manager ;;
        */kube-scheduler:*) group=kube-scheduler ;;
        */kube-proxy:*|*/coredns*|*/local-path*) group=kube-proxy ;;
        *) group=kube-apiserver ;;
    esac
    archive_of[$group]+=" $image"
done
rel=$WORK/release/kubernetes
mkdir -p "$rel/server/bin"
echo "$K8S_VERSION" >"$rel/version"
cp "$KIND_BIN/kubeadm" "$KIND_BIN/kubelet" "$K8S_BIN/kubectl" "$rel/server/bin/"
for group in "${!archive_of[@]}"; do
    # shellcheck disable=SC2086
    docker save -o "$rel/server/bin/$group.tar" ${archive_of[$group]}
done
log "release tarball"
tar -C "$WORK/release" -czf "$WORK/kubernetes-server-linux-amd64.tar.gz" kubernetes

# 4. the node image
log "kind build node-image $NODE_IMAGE"
"$KIND" build node-image --type file --base-image "$base_image" --image "$NODE_IMAGE" \
    "$WORK/kubernetes-server-linux-amd64.tar.gz" >&2 || die "kind build node-image failed"
mkdir -p "$CACHE"
rm -f "$CACHE"/node-*.tar
docker save -o "$archive.part" "$NODE_IMAGE" && mv "$archive.part" "$archive"
log "node image $NODE_IMAGE built in $((SECONDS - start))s ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" \
    | awk '{printf "%.0f MB", $1/1e6}'); cached $archive)"
echo "$NODE_IMAGE"
