"""The operator's own Prometheus metrics: reconcile passes per resource kind, their outcome and duration.

``prometheus_client`` objects in a registry of their own, served by ``serve`` on ``--metrics-address``
(the chart and the manifests set ``0.0.0.0:8080`` and annotate the pod for scraping). The metrics hold no
cluster data beyond object counts, so, like kube-state-metrics, they need no token.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)
RECONCILES = Counter("spindle_operator_reconciles", "Reconcile passes by resource kind and result "
                     "(success, conflict, error, failure = the pass ran but the object is failing, e.g. a quota)",
                     ["kind", "result"], registry=REGISTRY)
DURATION = Histogram("spindle_operator_reconcile_duration_seconds", "How long one reconcile pass took",
                     ["kind"], registry=REGISTRY,
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ACTIVE = Gauge("spindle_operator_managed_objects", "Objects with a live reconcile worker, by kind", ["kind"],
               registry=REGISTRY)

T = TypeVar("T")


async def timed(kind: str, pass_: Awaitable[T]) -> T:
    """Await one reconcile pass, counting it and its duration; ``result_of`` names a successful pass's result."""
    start = time.perf_counter()
    try:
        result = await pass_
    except BaseException as e:
        status = getattr(e, "status", None)
        RECONCILES.labels(kind, "conflict" if status == 409 else "error").inc()
        raise
    finally:
        DURATION.labels(kind).observe(time.perf_counter() - start)
    RECONCILES.labels(kind, "failure" if getattr(result, "failure", None) else "success").inc()
    return result


def set_active(kind: str, count: int) -> None:
    ACTIVE.labels(kind).set(count)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``:PORT`` = every address) -> (host, port); a clear error otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--metrics-address {text!r} is not HOST:PORT (e.g. 0.0.0.0:8080)")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(address: str) -> Any:
    """Serve ``/metrics`` on ``address`` in a background thread; returns the server (``.server_port``)."""
    host, port = parse_address(address)
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server
