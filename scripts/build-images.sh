#!/usr/bin/env bash
# Builds Spindle's two images with no container registry and no network inside any build step:
#   spindle:<version>           the runtime (images/spindle): head, worker and job-submission pods
#   spindle-operator:<version>  the operator (images/operator)
# Each is also tagged <name>:<content-hash>. The base is Debian bookworm minbase (scripts/debian-rootfs.sh);
# Python packages are wheels built here on the host with `pip wheel` (cached under
# ~/.cache/spindle-images/wheels/<hash>) and installed in the image with `pip install --no-index`.
# An image whose content hash (sources, Dockerfile, base, wheels) is unchanged is not rebuilt.
#
#   scripts/build-images.sh             build what changed (starts scripts/dockerd.sh when no daemon answers)
#   scripts/build-images.sh --print     print the image references it would build
#
# Env: DOCKER_HOST (default: Spindle's private daemon), SPINDLE_IMAGE_CACHE (~/.cache/spindle-images).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE=${SPINDLE_IMAGE_CACHE:-$HOME/.cache/spindle-images}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
BASE_PACKAGES=(python3 python-is-python3 tini ca-certificates)

log() { echo "[build-images $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "[build-images] ERROR: $*" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' runtime/pyproject.toml | head -1)
[[ -n $version ]] || die "no version in runtime/pyproject.toml"

# Hash of the files git tracks (plus untracked, not ignored ones) under the given paths.
tree_hash() {
    git ls-files -z --cached --others --exclude-standard -- "$@" | sort -z \
        | xargs -0 -r sha256sum | sha256sum | cut -c1-16
}

if [[ ${1:-} == --print ]]; then
    echo "spindle:$version spindle-operator:$version"
    exit 0
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--print]" >&2; exit 2
fi

[[ -n ${DOCKER_HOST:-} ]] || eval "$(scripts/dockerd.sh env)"
docker version >/dev/null 2>&1 || scripts/dockerd.sh start
[[ -x $PYTHON ]] || die "$PYTHON missing: run scripts/dev-env.sh first (or set PYTHON)"

start=$SECONDS
base=$(scripts/debian-rootfs.sh spindle-base/python "${BASE_PACKAGES[@]}")
log "base $base"
git_commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- runtime operator images examples 2>/dev/null || git_commit+="-dirty"

# Wheels: every dependency of both packages plus pip itself, built/downloaded once per dependency set.
wheels_for() {  # <name> <source dirs...>: prints a wheel directory holding <name>'s closure
    local name=$1; shift
    local key dir
    key=$( { "$PYTHON" --version; tree_hash "$@"; } | sha256sum | cut -c1-16)
    dir=$CACHE/wheels/$name-$key
    if [[ ! -f $dir/.complete ]]; then
        rm -rf "$dir"; mkdir -p "$dir"
        log "pip wheel $name and its dependencies into $dir"
        local sources=() s
        for s in "$@"; do sources+=("$REPO/$s"); done
        "$PYTHON" -m pip wheel -q --wheel-dir "$dir" "${sources[@]}" pip >&2 || die "pip wheel for $name failed"
        touch "$dir/.complete"
        find "$CACHE/wheels" -mindepth 1 -maxdepth 1 -name "$name-????????????????" ! -name "$name-$key" -exec rm -rf {} +
    fi
    echo "$dir"
}

build() {  # <image name> <context dir under images/> <wheel dir> <extra context dirs...>
    local name=$1 ctxsrc=$2 wheels=$3; shift 3
    local hash ctx
    hash=$( { echo "$base"; tree_hash "images/$ctxsrc" "$@"; sha256sum "$wheels"/*.whl; } | sha256sum | cut -c1-16)
    if [[ $(docker image inspect -f '{{index .Config.Labels "dev.spindle.content-hash"}}' \
            "$name:$hash" 2>/dev/null) == "$hash" ]]; then
        docker tag "$name:$hash" "$name:$version"
        log "$name:$version is current (content $hash)"
        return 0
    fi
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/spindle-image.XXXXXX")
    cp -r "images/$ctxsrc/." "$ctx/"
    mkdir -p "$ctx/wheels"
    cp "$wheels"/*.whl "$ctx/wheels/"
    mv "$ctx"/wheels/pip-*.whl "$ctx/wheels/pip.whl"
    local d
    for d in "$@"; do cp -r "$d" "$ctx/"; done
    log "docker build $name:$version (content $hash)"
    DOCKER_BUILDKIT=0 docker build -q --rm --force-rm \
        --build-arg "BASE=$base" --build-arg "VERSION=$version" \
        --build-arg "GIT_COMMIT=$git_commit" --build-arg "CONTENT_HASH=$hash" \
        -t "$name:$hash" -t "$name:$version" "$ctx" >/dev/null \
        || { rm -rf "$ctx"; die "docker build of $name failed"; }
    rm -rf "$ctx"
    # Older builds of this image go (their layers are shared or garbage).
    docker images --format '{{.Repository}}:{{.Tag}}' "$name" | grep -E ":[0-9a-f]{16}$" | grep -v ":$hash$" \
        | xargs -r docker rmi >/dev/null 2>&1 || true
    log "built $name:$version ($(docker image inspect -f '{{.Size}}' "$name:$version" | awk '{printf "%.0f MB", $1/1e6}'))"
}

build spindle spindle "$(wheels_for spindle runtime)" examples
build spindle-operator operator "$(wheels_for spindle-operator operator runtime)"
docker image prune -f --filter "dangling=true" >/dev/null
log "done in $((SECONDS - start))s: spindle:$version spindle-operator:$version"
