"""``ray.util.get_node_ip_address`` and ``ray.util.list_named_actors``: small lookups Ray programs use.

``list_named_actors`` asks the head's state API for the live actors that have a name (in the caller's
namespace, or in all of them), in Ray's shapes: names, or ``{"name", "namespace"}`` dicts.
"""

from __future__ import annotations

from typing import Any


def get_node_ip_address() -> str:
    """The IP address of the node this process runs on (the one Spindle uses to reach it)."""
    from spindle._core.context import maybe_core

    cw = maybe_core()
    if cw is not None and cw.address:
        return cw.address.rsplit(":", 1)[0]
    from spindle._rpc.net import routable_ip

    return routable_ip()


def list_named_actors(all_namespaces: bool = False) -> list[Any]:
    """Names of the live named actors in this job's namespace; with ``all_namespaces``, ``{"name", "namespace"}``
    for every namespace."""
    from spindle._core.context import core_or_init
    from spindle.util.state import list_actors

    namespace = core_or_init().namespace
    rows = list_actors(filters=[("state", "!=", "DEAD")], limit=100_000, detail=True)
    named = [(str(r["name"]), str(r["namespace"])) for r in rows if r.get("name")]
    if all_namespaces:
        return [{"name": n, "namespace": ns} for n, ns in named]
    return [n for n, ns in named if ns == namespace]
