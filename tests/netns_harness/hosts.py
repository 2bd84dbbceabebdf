"""Fake machines for multi-node tests: Linux network namespaces joined by a bridge.

Why: the runtime is multi-node from the start, and the bugs that matter (a node advertising the
wrong address, an object fetched over the wrong interface, a process bound to 127.0.0.1) only show
up when each node really has its own IP. Network namespaces give each "host" its own interfaces,
routes and loopback in one kernel, without containers or VMs; the processes still share the
filesystem, so the same venv runs everywhere.

Topology of one `Network`:

    root namespace (the test process)      bridge spbr<id>   10.<k>.0.1/24
      ├── veth sv<id>h<i>  ── namespace sp-<id>-<i>   eth0   10.<k>.0.<i+2>/24, lo up,
      └── ...                                               default route via 10.<k>.0.1

The run id and the subnet octet <k> are chosen per network so concurrent test runs on one machine
(other engineers, CI shards) never collide; a lock file serialises the choice. Teardown kills every
process in each namespace (`ip netns pids`), TERM first then KILL, then deletes namespaces, veths
and the bridge, and is safe to call after a partial setup or twice.

Beside a Docker engine: a dockerd with iptables enabled loads br_netfilter and sets the FORWARD policy to
DROP, which silently drops the traffic between the fake machines on the bridge. When the DOCKER-USER
chain exists (Docker's place for user rules, consulted first) each network adds ACCEPT rules for its own
bridge there and removes them on teardown.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LOCK = Path("/tmp/spindle-netns.lock")
_OCTETS = range(100, 250)
_PREFIX = "sp-"  # namespace names start with this (see `leftover_namespaces`)


class NetnsUnavailable(RuntimeError):
    """This machine cannot create network namespaces (not root, or no `ip`)."""


def check_available() -> None:
    """Raise NetnsUnavailable with a message saying how to fix it."""
    if shutil.which("ip") is None:
        raise NetnsUnavailable("multinode tests need the `ip` command: apt-get install -y iproute2")
    if os.geteuid() != 0:
        raise NetnsUnavailable(
            "multinode tests create network namespaces and must run as root "
            f"(running as uid {os.geteuid()}); CI runs them as root"
        )


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; on failure raise with ip's own error message."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def leftover_namespaces(run_id: str | None = None) -> list[str]:
    """Namespaces created by this harness (optionally by one network) that still exist."""
    names = [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line]
    prefix = f"{_PREFIX}{run_id}-" if run_id else _PREFIX
    return [n for n in names if n.startswith(prefix)]


@dataclass
class Host:
    """One fake machine: a network namespace with its own IP on the test bridge."""

    name: str  # the namespace name, usable with `ip netns exec`
    ip: str
    gateway: str  # the bridge's IP: how the host reaches the test process
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list, repr=False)

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` wrapped to run inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start `argv` in this host (same arguments as subprocess.Popen).

        `ip netns exec` execs the program in place, so the Popen's pid is the program's own.
        """
        proc = subprocess.Popen(self.command(argv), **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run `argv` in this host to completion (same arguments as subprocess.run)."""
        kwargs.setdefault("check", False)
        return subprocess.run(self.command(argv), **kwargs)

    def pids(self) -> list[int]:
        """Every process currently in this host's network namespace."""
        proc = ip("netns", "pids", self.name, check=False)
        return [int(p) for p in proc.stdout.split()]

    def signal_all(self, sig: int) -> None:
        """Send `sig` to every process in the namespace (SIGSTOP freezes the host, its kernel still answering)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill_all(self, grace_s: float = 3.0) -> None:
        """Stop every process in the namespace: SIGTERM, then SIGKILL after `grace_s`."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            self.signal_all(sig)
            self._reap()
            deadline = time.monotonic() + wait_s
            delay = 0.01
            while self.pids() and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
                self._reap()
            if not self.pids():
                break
        self._reap()

    def _reap(self) -> None:
        """Collect exit statuses of our own children so none stays a zombie in the namespace."""
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0)


class Network:
    """A bridge in the root namespace plus the hosts attached to it."""

    def __init__(self) -> None:
        check_available()
        self.run_id = secrets.token_hex(3)  # 6 hex chars: names fit in IFNAMSIZ (15)
        self.bridge = f"spbr{self.run_id}"
        self.hosts: list[Host] = []
        self._veths: list[str] = []
        self._bridge_created = False
        self._docker_rules: list[list[str]] = []
        try:
            with _allocation_lock():  # the address must be in place before the next run looks
                self.octet = _free_octet()
                self.subnet = ipaddress.ip_network(f"10.{self.octet}.0.0/24")
                self.gateway = f"10.{self.octet}.0.1"
                ip("link", "add", self.bridge, "type", "bridge")
                self._bridge_created = True
                ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            self._docker_rules = _accept_in_docker_user(self.bridge)
        except BaseException:
            self.teardown()
            raise

    def add_hosts(self, n: int) -> list[Host]:
        return [self.add_host() for _ in range(n)]

    def add_host(self) -> Host:
        index = len(self.hosts)
        if index + 2 > 254:
            raise ValueError("a test network holds at most 253 hosts")
        name = f"{_PREFIX}{self.run_id}-{index}"
        host_ip = f"10.{self.octet}.0.{index + 2}"
        host = Host(name=name, ip=host_ip, gateway=self.gateway)
        outside, inside = f"sv{self.run_id}h{index}", f"sv{self.run_id}n{index}"
        ip("netns", "add", name)
        self.hosts.append(host)  # from here on, teardown deletes it
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._veths.append(outside)
        ip("link", "set", inside, "netns", name)
        ip("link", "set", outside, "master", self.bridge)
        ip("link", "set", outside, "up")
        ns = ("-n", name)
        ip(*ns, "link", "set", "lo", "up")
        ip(*ns, "link", "set", inside, "name", "eth0")
        ip(*ns, "addr", "add", f"{host_ip}/24", "dev", "eth0")
        ip(*ns, "link", "set", "eth0", "up")
        ip(*ns, "route", "add", "default", "via", self.gateway)
        return host

    def teardown(self) -> None:
        """Kill every process in the hosts and delete everything this network created."""
        errors: list[str] = []
        for host in self.hosts:
            try:
                host.kill_all()
            except Exception as exc:  # noqa: BLE001 - keep tearing down the rest
                errors.append(f"{host.name}: {exc}")
        for host in self.hosts:
            _delete_netns(host.name, errors)
        for veth in self._veths:  # normally gone with their namespace's peer
            ip("link", "del", veth, check=False)
        for rule in self._docker_rules:
            subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True, check=False)
        self._docker_rules.clear()
        if self._bridge_created:
            ip("link", "del", self.bridge, check=False)
        self.hosts.clear()
        self._veths.clear()
        self._bridge_created = False
        if errors:
            raise RuntimeError("netns teardown incomplete: " + "; ".join(errors))


DOCKER_USER = "DOCKER-USER"


def _accept_in_docker_user(bridge: str) -> list[list[str]]:
    """ACCEPT rules for ``bridge`` in Docker's DOCKER-USER chain, when that chain exists; the rules added."""
    if shutil.which("iptables") is None:
        return []
    probe = subprocess.run(["iptables", "-w", "-n", "-L", DOCKER_USER], capture_output=True, check=False)
    if probe.returncode != 0:
        return []
    rules = [[DOCKER_USER, "-i", bridge, "-j", "ACCEPT"], [DOCKER_USER, "-o", bridge, "-j", "ACCEPT"]]
    added = []
    for rule in rules:
        proc = subprocess.run(["iptables", "-w", "-I", *rule], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"iptables -I {' '.join(rule)} failed: {proc.stderr.strip()}")
        added.append(rule)
    return added


def _delete_netns(name: str, errors: list[str]) -> None:
    # A namespace can be briefly busy while a killed process exits; retry a little.
    for attempt in range(20):
        proc = ip("netns", "del", name, check=False)
        if proc.returncode == 0 or name not in leftover_namespaces():
            return
        time.sleep(0.05 * (attempt + 1))
    errors.append(f"could not delete namespace {name}: {proc.stderr.strip()}")


@contextlib.contextmanager
def _allocation_lock() -> Iterator[None]:
    with open(_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_octet() -> int:
    """A k such that 10.k.0.0/24 overlaps no address or route on this machine."""
    used = ip("-4", "addr").stdout + ip("-4", "route").stdout
    candidates = [k for k in _OCTETS if f"10.{k}." not in used]
    if not candidates:
        raise RuntimeError("no free 10.k.0.0/24 subnet for a test network")
    return candidates[secrets.randbelow(len(candidates))]


@contextlib.contextmanager
def network() -> Iterator[Network]:
    """A Network torn down on exit, whatever happens inside."""
    net = Network()
    try:
        yield net
    finally:
        net.teardown()
