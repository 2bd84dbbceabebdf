"""Deciding when a node agent is dead: a pure policy over heartbeat ages, unit-tested on plain data.

Agents heartbeat every ``SPINDLE_HEARTBEAT_S``. A node whose heartbeats stop for
``SPINDLE_NODE_TIMEOUT_S`` is dead (that bounds detection when a whole machine vanishes). Most
deaths on Kubernetes are processes that exit (OOM kill, eviction, rollout) while the machine's
network stays up: those are found sooner, because a node that has been silent for a few
heartbeats (``suspect_after``) is probed with a TCP connect, and a refused connection means no
agent listens there any more. A slow but live agent still accepts connections, so a busy node is
never declared dead before the full timeout. Nor is a node blamed for the head's own stalls: when the
head's checks themselves were held up (a starved process: its heartbeat handlers did not run either), the
time it stood still does not count as the nodes' silence.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from spindle._proto import pb

HEARTBEAT_S = float(os.environ.get("SPINDLE_HEARTBEAT_S", "0.2"))
NODE_TIMEOUT_S = float(os.environ.get("SPINDLE_NODE_TIMEOUT_S", "4"))
SUSPECT_AFTER_S = float(os.environ.get("SPINDLE_NODE_SUSPECT_S", str(max(1.0, 5 * HEARTBEAT_S))))
CHECK_INTERVAL_S = max(0.05, min(0.5, NODE_TIMEOUT_S / 8))  # how often the head looks at the nodes' silence

Verdict = Literal["alive", "probe", "dead"]


@dataclass(frozen=True)
class Timing:
    timeout_s: float = NODE_TIMEOUT_S
    suspect_after_s: float = SUSPECT_AFTER_S


def verdict(silent_s: float, timing: Timing = Timing()) -> Verdict:
    """What to do about a node that has not heartbeated for ``silent_s`` seconds."""
    if silent_s > timing.timeout_s:
        return "dead"
    if silent_s > min(timing.suspect_after_s, timing.timeout_s):
        return "probe"
    return "alive"


def head_stall(gap_s: float, interval_s: float = CHECK_INTERVAL_S) -> float:
    """Seconds the head stood still between two checks ``gap_s`` apart that run every ``interval_s``.

    A check is due every interval; up to twice that is scheduling noise. Beyond it the head's process did not
    run its threads (starved, or stopped): no heartbeat was handled meanwhile either, so that time is taken off
    every node's silence instead of being read as theirs."""
    return max(0.0, gap_s - 2 * interval_s)


def after_probe(refused: bool) -> Verdict:
    """A refused connection means no agent listens there: dead. Anything else: wait for the timeout."""
    return "dead" if refused else "alive"


def death_reason(silent_s: float, refused: bool) -> str:
    if refused:
        return f"its agent stopped heartbeating {silent_s:.1f} s ago and refuses connections (the process exited)"
    return f"it missed heartbeats for {silent_s:.1f} s"


def newly_dead(nodes: Sequence[pb.NodeInfo], seen_dead: set[str]) -> dict[str, str]:
    """The nodes (ID -> address) of a cluster view that died since the last look; updates ``seen_dead``. A node
    seen alive again (it rejoined under its ID after a partition or a head restart) is forgotten, so its next death
    counts. Drivers (``_core.node_watch``) and agents (``_agent.death_notice``) keep one ``seen_dead`` each."""
    seen_dead -= {n.node_id for n in nodes if n.alive}
    dead = {n.node_id: n.address for n in nodes if not n.alive and n.node_id not in seen_dead}
    seen_dead.update(dead)
    return dead
