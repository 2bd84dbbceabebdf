#!/usr/bin/env bash
# Makes a Docker base image from Debian's packages alone: `debootstrap --variant=minbase bookworm` with
# the given packages, trimmed (no docs, man pages, apt lists or .debs) and `docker import`ed. No container
# registry is involved, only Debian's archive. Cached twice by a hash of the package list and this
# script: the image tag carries the hash, and the root filesystem tarball is kept under
# ~/.cache/spindle-images/rootfs/ so a fresh Docker data root imports it instead of bootstrapping again.
#
#   scripts/debian-rootfs.sh <repository> <package>...   prints the image reference (<repository>:<hash>)
#
# Env: SPINDLE_IMAGE_CACHE (default ~/.cache/spindle-images), SPINDLE_DEBIAN_MIRROR.
set -euo pipefail
SELF=$(readlink -f "$0")
[[ $# -ge 1 ]] || { echo "usage: $0 <repository> <package>..." >&2; exit 2; }
REPOSITORY=$1; shift
SUITE=bookworm
MIRROR=${SPINDLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${SPINDLE_IMAGE_CACHE:-$HOME/.cache/spindle-images}

log() { echo "[debian-rootfs $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "[debian-rootfs] ERROR: $*" >&2; exit 1; }

packages=$(printf '%s\n' "$@" | sort -u | paste -sd, -)
hash=$( { echo "$SUITE $packages"; cat "$SELF"; } | sha256sum | cut -c1-12)
ref=$REPOSITORY:$hash
if docker image inspect "$ref" >/dev/null 2>&1; then
    echo "$ref"; exit 0
fi
mkdir -p "$CACHE/rootfs" "$CACHE/debs"
tarball=$CACHE/rootfs/$SUITE-$hash.tar.gz
if [[ ! -s $tarball ]]; then
    command -v debootstrap >/dev/null || {
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    }
    root=$(mktemp -d "${TMPDIR:-/tmp}/spindle-rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    log "debootstrap --variant=minbase $SUITE with ${packages:-nothing extra} (a few minutes)"
    debootstrap --variant=minbase --cache-dir="$CACHE/debs" ${packages:+--include="$packages"} \
        "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
        || { tail -30 "$root.log" >&2; die "debootstrap failed (log above)"; }
    rm -f "$root.log"
    # Trim what a container never reads; keep copyright files (licences).
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/man \
        "$root"/usr/share/info "$root"/var/log/* "$root"/tmp/*
    find "$root/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true
    tar -C "$root" --numeric-owner -czf "$tarball.part" . && mv "$tarball.part" "$tarball"
    log "cached $tarball ($(du -h "$tarball" | cut -f1))"
fi
log "docker import $tarball as $ref"
docker import --message "debootstrap --variant=minbase $SUITE: $packages" "$tarball" "$ref" >/dev/null
echo "$ref"
