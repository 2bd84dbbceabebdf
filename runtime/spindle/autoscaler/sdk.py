"""``request_resources``: ask the autoscaler for capacity ahead of the work (Ray's ``ray.autoscaler.sdk``).

The wire layer (``spindle._proto``: protobuf and gRPC, ~135 ms and ~10 MiB) loads on the call, not on import:
``spindle.autoscaler`` imports this module, and the operator imports ``spindle.autoscaler.policy`` (pure) only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def request_resources(num_cpus: int | None = None, bundles: Sequence[Mapping[str, float]] | None = None) -> None:
    """Scale the cluster to fit ``num_cpus`` one-CPU bundles plus ``bundles``, as Ray does.

    The request replaces the previous one (``request_resources()`` or ``num_cpus=0`` clears it). It is
    a floor on the cluster's size, packed onto the nodes' total resources whatever their usage, and
    it launches nodes at once (no upscaling-speed limit); nodes it needs are not scaled down.
    """
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 0):
        raise TypeError(f"num_cpus must be a non-negative int, got {num_cpus!r}")
    wanted: list[dict[str, float]] = [{"CPU": 1.0}] * (num_cpus or 0)
    if bundles is not None:
        if not isinstance(bundles, (list, tuple)):
            raise TypeError(f"bundles must be a list of dicts such as [{{'CPU': 1}}], got {type(bundles).__name__}")
        for b in bundles:
            if not isinstance(b, Mapping):
                raise TypeError(f"each bundle must be a dict such as {{'CPU': 1}}, got {b!r}")
            bundle: dict[str, float] = {}
            for k, v in b.items():
                if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)) \
                        or not math.isfinite(v) or v < 0:
                    raise TypeError(f"bundle {dict(b)!r}: resource names are strings and amounts non-negative numbers")
                bundle[k] = float(v)
            wanted.append(bundle)
    from spindle._core.context import core
    from spindle._proto import pb

    cw = core()
    cw.head().RequestResources(pb.ResourceRequest(bundles=[pb.Resources(amounts=b) for b in wanted]),
                               metadata=cw.md, timeout=30)
