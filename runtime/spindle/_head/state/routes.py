"""The state API's HTTP routes on the head's server (:8265): Ray's ``/api/v0/*`` and Spindle's UI feeds.

Thin handlers: rows come from ``rows``/``agents``, filtering from ``query``. Builders that take the head's
locks or call agents run off the event loop. Paths and shapes are contract B in CONTRACTS.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from spindle._head.jobs import routes as job_routes
from spindle._head.state import agents, placement_rows, query, rows

if TYPE_CHECKING:
    from spindle._head.head_state import HeadState

HEAD = web.AppKey("state_head", object)
SSE_OVERVIEW_S = 1.0
SSE_HEARTBEAT_S = 15.0
FIRST_CHUNK_WAIT_S = 1.0

routes = web.RouteTableDef()


def install(app: web.Application, head: HeadState) -> None:
    app[HEAD] = head
    app.add_routes(routes)


def _head(request: web.Request) -> HeadState:
    return request.app[HEAD]  # type: ignore[return-value]


def _manager(request: web.Request) -> Any:
    return request.app.get(job_routes.MANAGER)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _listing(request: web.Request, kind: str, build: Callable[[], Any]) -> web.Response:
    try:
        q = query.parse(request.query)
        built = await _off_loop(build)
        data, warning = built if isinstance(built, tuple) else (built, "")
        return web.json_response(query.apply(kind, data, q, warning=warning))
    except query.QueryError as e:
        return error(400, str(e))
    except agents.NotFound as e:
        return error(404, str(e))


@routes.get("/api/v0/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    obs = _head(request).observed

    def build() -> list[dict[str, Any]]:
        with obs.lock:
            return [r.to_json() for r in obs.tasks.newest_first()]
    return await _listing(request, "tasks", build)


@routes.get("/api/v0/actors")
async def list_actors(request: web.Request) -> web.Response:
    head = _head(request)
    return await _listing(request, "actors", lambda: rows.actors(head, head.observed))


@routes.get("/api/v0/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    head = _head(request)
    return await _listing(request, "nodes", lambda: rows.nodes(head, head.observed))


@routes.get("/api/v0/workers")
async def list_workers(request: web.Request) -> web.Response:
    head = _head(request)
    return await _listing(request, "workers", lambda: rows.workers(head, head.observed))


@routes.get("/api/v0/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    head, manager = _head(request), _manager(request)
    return await _listing(request, "jobs", lambda: rows.jobs(head, manager))


@routes.get("/api/v0/objects")
async def list_objects(request: web.Request) -> web.Response:
    head = _head(request)
    return await _listing(request, "objects", lambda: agents.objects(head, query.MAX_LIMIT))


@routes.get("/api/v0/placement_groups")
async def list_placement_groups(request: web.Request) -> web.Response:
    head = _head(request)
    return await _listing(request, "placement_groups", lambda: placement_rows.placement_groups(head.pgs.table()))


def _summary_envelope(result: dict[str, Any]) -> dict[str, Any]:
    """Ray's client reads ``data.result.result.node_id_to_summary``; contract B (the UI) reads
    ``data.result.node_id_to_summary``: both are there."""
    return query.envelope({"total": 1, "num_after_truncation": 1, "num_filtered": 1, "result": result,
                           "partial_failure_warning": "", "warnings": None, **result})


@routes.get("/api/v0/tasks/summarize")
async def summarize_tasks(request: web.Request) -> web.Response:
    obs = _head(request).observed

    def build() -> dict[str, Any]:
        with obs.lock:
            summary = obs.tasks.summary()
            total = obs.tasks.total_seen
        return {"node_id_to_summary": {"cluster": {"summary": summary, "total_tasks": total,
                                                   "total_actor_tasks": 0, "total_actor_scheduled": 0,
                                                   "summary_by": "func_name"}}}
    return web.json_response(_summary_envelope(await _off_loop(build)))


@routes.get("/api/v0/actors/summarize")
async def summarize_actors(request: web.Request) -> web.Response:
    head = _head(request)
    actor_rows = await _off_loop(rows.actors, head, head.observed)
    summary = rows.actor_summary(actor_rows)
    return web.json_response(_summary_envelope({"node_id_to_summary": {"cluster": {
        "summary": summary, "total_actors": len(actor_rows), "summary_by": "class"}}}))


@routes.get("/api/v0/objects/summarize")
async def summarize_objects(request: web.Request) -> web.Response:
    head = _head(request)
    object_rows, _ = await _off_loop(agents.objects, head, query.MAX_LIMIT)
    return web.json_response(_summary_envelope({"node_id_to_summary": {"cluster": rows.object_summary(object_rows)}}))


# ---------------------------------------------------------------- logs
@routes.get("/api/v0/logs")
async def list_logs(request: web.Request) -> web.Response:
    head = _head(request)
    node_id = request.query.get("node_id", "") or request.query.get("node_ip", "")
    try:
        if not node_id:
            return error(400, "give node_id (or node_ip): `spindle list nodes` shows them")
        result = await _off_loop(agents.list_files, head, agents.node_of(head, node_id), request.query.get("glob", ""))
    except agents.NotFound as e:
        return error(404, str(e))
    return web.json_response(query.envelope(result))


def _lines(request: web.Request) -> int:
    raw = request.query.get("lines", "1000")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"lines={raw!r} is not an integer (-1 = the whole file)") from None


@routes.get("/api/v0/logs/file")
async def get_log(request: web.Request) -> web.StreamResponse:
    return await _serve_log(request, follow=False)


@routes.get("/api/v0/logs/stream")
async def stream_log(request: web.Request) -> web.StreamResponse:
    return await _serve_log(request, follow=True)


async def _serve_log(request: web.Request, follow: bool) -> web.StreamResponse:
    head = _head(request)
    try:
        lines = _lines(request)
        target = await _off_loop(agents.resolve, head, request.query)
        call, chunks = await _off_loop(agents.read, head, target, lines, follow)
    except ValueError as e:
        return error(400, str(e))
    except agents.NotFound as e:
        return error(404, str(e))
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=64)

    def pump() -> None:
        try:
            for data in chunks:
                asyncio.run_coroutine_threadsafe(q.put(data), loop).result()
            asyncio.run_coroutine_threadsafe(q.put(None), loop).result()
        except BaseException as e:  # noqa: BLE001 - handed to the handler
            try:
                asyncio.run_coroutine_threadsafe(q.put(e), loop).result()
            except RuntimeError:  # the loop is gone
                pass

    worker = loop.run_in_executor(None, pump)
    try:  # a missing file fails at once; an existing one that has nothing yet (following) just waits
        first: Any = await asyncio.wait_for(q.get(), FIRST_CHUNK_WAIT_S)
    except asyncio.TimeoutError:
        first = b""
    if isinstance(first, agents.NotFound):
        return error(404, str(first))
    if isinstance(first, BaseException):
        return error(502, f"reading {target.filename} on node {target.node_id} failed: {first}")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8",
                                       "X-Spindle-Log-Node": target.node_id, "X-Spindle-Log-File": target.filename})
    await resp.prepare(request)
    try:
        item: Any = first
        while item is not None and not isinstance(item, BaseException):
            await resp.write(item)
            item = await q.get()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        call.cancel()
        while not worker.done():  # let the pump thread see the cancellation and finish
            try:
                q.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(0.01)
    return resp


# ---------------------------------------------------------------- Spindle's UI feeds
@routes.get("/api/spindle/overview")
async def overview(request: web.Request) -> web.Response:
    head = _head(request)
    return web.json_response(await _off_loop(rows.overview, head, head.observed))


def _int_param(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise query.QueryError(f"{name}={raw!r} is not an integer") from None
    if not 1 <= value <= maximum:
        raise query.QueryError(f"{name}={value} must be between 1 and {maximum}")
    return value


@routes.get("/api/spindle/errors")
async def errors(request: web.Request) -> web.Response:
    obs = _head(request).observed
    try:
        limit = _int_param(request, "limit", 100, 10_000)
    except query.QueryError as e:
        return error(400, str(e))
    with obs.lock:
        found = list(obs.tasks.errors)[:limit]
    return web.json_response({"errors": found})


@routes.get("/api/spindle/timeline")
async def timeline(request: web.Request) -> web.Response:
    obs = _head(request).observed
    try:
        limit = _int_param(request, "limit", 1000, 100_000)
    except query.QueryError as e:
        return error(400, str(e))

    def build() -> list[dict[str, Any]]:
        with obs.lock:
            return obs.tasks.timeline(limit)
    return web.json_response({"tasks": await _off_loop(build)})


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@routes.get("/api/spindle/events")
async def events(request: web.Request) -> web.StreamResponse:
    head = _head(request)
    obs = head.observed
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    seen_tasks, seen_errors = -1, obs.tasks.errors_version
    last_beat = time.monotonic()
    try:
        while True:
            await resp.write(_sse("overview", await _off_loop(rows.overview, head, obs)))
            with obs.lock:
                version, errors_version, changed = obs.tasks.version, obs.tasks.errors_version, obs.tasks.changed_ms
                summary = obs.tasks.summary() if version != seen_tasks else None
                fresh = list(obs.tasks.errors)[: min(errors_version - seen_errors, obs.tasks.errors.maxlen or 0)]
            if summary is not None:
                await resp.write(_sse("tasks", {"summary": summary, "changed_since_ms": changed}))
                seen_tasks = version
            if errors_version != seen_errors:
                await resp.write(_sse("errors", {"errors": fresh}))
                seen_errors = errors_version
            if time.monotonic() - last_beat >= SSE_HEARTBEAT_S:
                await resp.write(b": heartbeat\n\n")
                last_beat = time.monotonic()
            await asyncio.sleep(SSE_OVERVIEW_S)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp
