"""The head's autoscaler HTTP API (``/api/autoscaler/...``) and the operations behind it.

Autoscalers (the operator, the local provider) read the cluster's state here and drain nodes before
removing them; the routes are thin shells over ``state``/``drain``/``drain_status``/``undrain``,
which the local provider in the head process also calls directly. The JSON shapes are the contract
in docs/CONVENTIONS.md ("Autoscaler").
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from spindle._head.head_state import HeadState

HEAD = web.AppKey("autoscaler_head", object)
DEFAULT_DRAIN_DEADLINE_S = 600.0


class NotFound(LookupError):
    pass


def state(head: HeadState) -> dict[str, Any]:
    """``GET /api/autoscaler/state``: nodes with their idleness, pending demand by shape, requested bundles."""
    now = time.monotonic()
    with head.lock:
        book = head.autoscaler
        nodes = [book.node_row(rec.info, rec.view.alive, now) for rec in head.nodes.values()]
        capacity = [dict(rec.view.total) for rec in head.nodes.values() if rec.view.alive and rec.view.schedulable]
        actors = []
        for a in head.actors.values():
            if a.waiting and a.state in ("PENDING", "RESTARTING"):
                shape = dict(a.spec.placement.amounts)
                for k, v in a.spec.hold.amounts.items():
                    shape[k] = max(shape.get(k, 0.0), v)
                actors.append(shape)
        alive = {nid for nid, rec in head.nodes.items() if rec.view.alive}
        demand = book.pending_demand(actors, capacity, now, alive)
        requested = [dict(b) for b in book.requested]
    return {"timestamp": time.time(), "nodes": nodes, "pending_demand": demand, "requested_resources": requested}


def drain(head: HeadState, node_id: str, deadline_s: float, reason: str) -> dict[str, Any]:
    """Mark a node draining (idempotent): the scheduler and its agent stop giving it new work."""
    with head.lock:
        rec = head.nodes.get(node_id)
        if rec is None:
            raise NotFound(f"no node {node_id!r} in this cluster (GET /api/autoscaler/state lists them)")
        if rec.info.is_head:
            raise ValueError(f"node {node_id} is the head's node: it is never drained")
        head.autoscaler.drain(node_id, deadline_s, reason, time.monotonic())
        rec.info.draining = True
        rec.view.schedulable = False
        head.lock.notify_all()
        return {"node_id": node_id, "state": "DRAINING" if rec.view.alive else "DEAD"}


def drain_status(head: HeadState, node_id: str) -> dict[str, Any]:
    with head.lock:
        rec = head.nodes.get(node_id)
        if rec is None:
            raise NotFound(f"no node {node_id!r} in this cluster")
        done, why = head.autoscaler.drained(node_id, rec.view.alive, time.monotonic())
        row = head.autoscaler.node_row(rec.info, rec.view.alive, time.monotonic())
    return {"node_id": node_id, "state": row["state"], "drained": done, "reason": why}


def undrain(head: HeadState, node_id: str) -> dict[str, Any]:
    with head.lock:
        rec = head.nodes.get(node_id)
        if rec is None:
            raise NotFound(f"no node {node_id!r} in this cluster")
        head.autoscaler.undrain(node_id)
        rec.info.draining = False
        rec.view.schedulable = True
        head.lock.notify_all()
        return {"node_id": node_id, "state": "ALIVE" if rec.view.alive else "DEAD"}


def request_resources(head: HeadState, bundles: list[dict[str, float]]) -> None:
    with head.lock:
        head.autoscaler.request_resources(bundles)


def parse_bundles(value: Any) -> list[dict[str, float]]:
    """Validate ``[{"CPU": 1}, ...]``: resource names to non-negative finite numbers."""
    if not isinstance(value, list):
        raise ValueError('"bundles" must be a list of objects such as {"CPU": 1}')
    out = []
    for b in value:
        if not isinstance(b, dict):
            raise ValueError(f'each bundle must be an object such as {{"CPU": 1}}, got {b!r}')
        bundle: dict[str, float] = {}
        for k, v in b.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"bundle {b!r}: {k!r} must be a non-negative number")
            bundle[str(k)] = float(v)
        out.append(bundle)
    return out


# ---------------------------------------------------------------- routes
routes = web.RouteTableDef()


def _head(request: web.Request) -> HeadState:
    return request.app[HEAD]  # type: ignore[return-value]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "the body must be a JSON object"}',
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "the body must be a JSON object"}', content_type="application/json")
    return body


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@routes.get("/api/autoscaler/state")
async def get_state(request: web.Request) -> web.Response:
    return web.json_response(state(_head(request)))


@routes.post("/api/autoscaler/drain")
async def post_drain(request: web.Request) -> web.Response:
    body = await _body(request)
    node_id = body.get("node_id")
    if not isinstance(node_id, str) or not node_id:
        return _error(400, '"node_id" (string) is required')
    deadline = body.get("deadline_s", DEFAULT_DRAIN_DEADLINE_S)
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not math.isfinite(deadline) \
            or deadline < 0:
        return _error(400, '"deadline_s" must be a non-negative number of seconds')
    try:
        return web.json_response(drain(_head(request), node_id, float(deadline), str(body.get("reason", ""))))
    except NotFound as e:
        return _error(404, str(e))
    except ValueError as e:
        return _error(400, str(e))


@routes.get("/api/autoscaler/drain/{node_id}")
async def get_drain(request: web.Request) -> web.Response:
    try:
        return web.json_response(drain_status(_head(request), request.match_info["node_id"]))
    except NotFound as e:
        return _error(404, str(e))


@routes.post("/api/autoscaler/undrain")
async def post_undrain(request: web.Request) -> web.Response:
    body = await _body(request)
    node_id = body.get("node_id")
    if not isinstance(node_id, str) or not node_id:
        return _error(400, '"node_id" (string) is required')
    try:
        return web.json_response(undrain(_head(request), node_id))
    except NotFound as e:
        return _error(404, str(e))


@routes.post("/api/autoscaler/request_resources")
async def post_request_resources(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        bundles = parse_bundles(body.get("bundles", []))
    except ValueError as e:
        return _error(400, str(e))
    request_resources(_head(request), bundles)
    return web.json_response({"bundles": bundles})
