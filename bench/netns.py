"""Two network namespaces joined by a veth pair: a two-node "network" on one machine.

Each namespace has its own interfaces and loopback, so a node agent in one reaches the head in the other
only through the veth link, as it would across hosts (no shared 127.0.0.1). Needs root and ``ip``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Pair:
    head_ns: str
    node_ns: str
    head_ip: str
    node_ip: str

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@contextmanager
def pair(prefix: str = "spb", subnet: str = "10.77.0") -> Iterator[Pair]:
    """Create ``<prefix>-head`` and ``<prefix>-node`` linked by veth; delete both on exit."""
    p = Pair(f"{prefix}-head", f"{prefix}-node", f"{subnet}.1", f"{subnet}.2")
    for ns in (p.head_ns, p.node_ns):
        _ip("netns", "del", ns, check=False)  # leftovers of an interrupted run
    try:
        _ip("netns", "add", p.head_ns)
        _ip("netns", "add", p.node_ns)
        _ip("link", "add", f"{prefix}-h", "type", "veth", "peer", "name", f"{prefix}-n")
        for ns, dev, addr in (
            (p.head_ns, f"{prefix}-h", p.head_ip),
            (p.node_ns, f"{prefix}-n", p.node_ip),
        ):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield p
    finally:
        for ns in (p.head_ns, p.node_ns):
            _ip("netns", "del", ns, check=False)
