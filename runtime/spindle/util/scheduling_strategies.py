"""Scheduling strategies, named as in ``ray.util.scheduling_strategies``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id``; with ``soft=True`` fall back to any node when it cannot."""

    node_id: str
    soft: bool = False


__all__ = ["NodeAffinitySchedulingStrategy"]
