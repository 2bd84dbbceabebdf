#!/usr/bin/env bash
# Spindle's own Docker engine: a private dockerd for building images and running kind, that leaves the
# host's firewall alone. A default dockerd sets the iptables FORWARD policy to DROP, which cuts off the
# network-namespace test bridges (tests/netns_harness); this one runs with "iptables": false and
# "ip-masq": false on its own bridge, data root, exec root and socket, so it can also sit beside a
# dockerd the machine already runs. Its default runtime is scripts/docker/runc-wrapper (runc without
# CAP_SYS_RESOURCE, which some VMs cannot grant to privileged containers such as kind's nodes).
#
#   scripts/dockerd.sh start   install Debian's docker.io if dockerd is missing, start the daemon, wait
#   scripts/dockerd.sh stop    stop it (containers die with it; images stay in the data root)
#   scripts/dockerd.sh env     print `export DOCKER_HOST=...` for eval
#   scripts/dockerd.sh status  exit 0 when it answers
#
# Env: SPINDLE_DOCKER_ROOT (default /var/lib/spindle-docker), SPINDLE_DOCKER_RUN (default /run/spd).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

DATA_ROOT=${SPINDLE_DOCKER_ROOT:-/var/lib/spindle-docker}
RUN_DIR=${SPINDLE_DOCKER_RUN:-/run/spd}      # short: containerd's shim sockets live below it
SOCK=$RUN_DIR.sock
PIDFILE=$RUN_DIR.pid
BRIDGE=spd0
BRIDGE_CIDR=172.30.255.1/24
POOL=172.30.0.0/17                           # networks kind and tests create (not 10.x: the netns tests)
LOG=$DATA_ROOT.log
export DOCKER_HOST=unix://$SOCK

log() { echo "[dockerd $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "[dockerd] ERROR: $*" >&2; exit 1; }

answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install_engine() {
    command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 && return 0
    [[ $(id -u) == 0 ]] || die "dockerd is missing; install Debian's docker.io (needs root)"
    log "installing Debian's docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
}

start() {
    if answers; then
        log "already running at $DOCKER_HOST"
        return 0
    fi
    install_engine
    mkdir -p "$DATA_ROOT" "$RUN_DIR"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
    install -m 0755 "$REPO/scripts/docker/runc-wrapper" "$DATA_ROOT/runc-wrapper"
    cat >"$DATA_ROOT/daemon.json" <<JSON
{
  "data-root": "$DATA_ROOT/data",
  "exec-root": "$RUN_DIR",
  "pidfile": "$PIDFILE",
  "hosts": ["unix://$SOCK"],
  "bridge": "$BRIDGE",
  "iptables": false,
  "ip6tables": false,
  "ip-masq": false,
  "ip-forward": true,
  "default-address-pools": [{"base": "$POOL", "size": 24}],
  "runtimes": {"spindle-runc": {"path": "$DATA_ROOT/runc-wrapper"}},
  "default-runtime": "spindle-runc",
  "features": {"buildkit": false},
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"}
}
JSON
    log "starting dockerd at $DOCKER_HOST (data $DATA_ROOT, log $LOG)"
    # setsid: the daemon outlives this script and the test run's process group.
    setsid dockerd --config-file "$DATA_ROOT/daemon.json" >>"$LOG" 2>&1 </dev/null &
    local delay=0.2 waited=0
    until answers; do
        if ! kill -0 $! 2>/dev/null; then
            tail -20 "$LOG" >&2
            die "dockerd exited at start-up (log above, full log $LOG)"
        fi
        (( waited++ < 120 )) || die "dockerd did not answer within ~2 min (see $LOG)"
        sleep "$delay"; delay=1
    done
    log "dockerd $(docker version --format '{{.Server.Version}}') ready"
}

stop() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
        log "not running"
        return 0
    fi
    log "stopping dockerd (pid $pid)"
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { log "still alive after 60 s; killing"; kill -9 "$pid"; }
    return 0
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    env) echo "export DOCKER_HOST=$DOCKER_HOST" ;;
    status) answers ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
