"""The Jobs REST API routes (Ray's paths and JSON), as thin handlers over the JobManager.

Errors are JSON ``{"error": message}`` with the status the manager chose (400 bad input, 404
unknown id); the middleware in spindle._head.http_server adds the token check.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from spindle._head.jobs.manager import JobError, JobManager
from spindle._head.jobs.requests import parse_submit
from spindle._packages import PackageError, PackageStore

MANAGER = web.AppKey("job_manager", JobManager)
PACKAGES = web.AppKey("package_store", PackageStore)

routes = web.RouteTableDef()


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _id(request: web.Request) -> str:
    return request.match_info["job_or_submission_id"]


async def _off_loop(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


@routes.get("/api/packages/{protocol}/{package_name}")
async def get_package(request: web.Request) -> web.Response:
    try:
        found = request.app[PACKAGES].exists(request.match_info["protocol"], request.match_info["package_name"])
    except PackageError as e:
        return error(400, str(e))
    if not found:
        return error(404, f"Package {request.match_info['package_name']} does not exist.")
    return web.json_response({})


@routes.put("/api/packages/{protocol}/{package_name}")
async def put_package(request: web.Request) -> web.Response:
    data = await request.read()
    try:
        await _off_loop(request.app[PACKAGES].put, request.match_info["protocol"],
                        request.match_info["package_name"], data)
    except PackageError as e:
        return error(400, str(e))
    return web.json_response({})


@routes.post("/api/jobs/")
async def submit_job(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error(400, "the request body is not valid JSON")
    try:
        req = parse_submit(body)
        submission_id = await _off_loop(request.app[MANAGER].submit, req)
    except ValueError as e:
        return error(400, str(e))
    except JobError as e:
        return error(e.status, str(e))
    return web.json_response({"job_id": submission_id, "submission_id": submission_id})


@routes.get("/api/jobs/")
async def list_jobs(request: web.Request) -> web.Response:
    return web.json_response([d.to_json() for d in request.app[MANAGER].list()])


@routes.get("/api/jobs/{job_or_submission_id}")
async def get_job(request: web.Request) -> web.Response:
    try:
        return web.json_response(request.app[MANAGER].get(_id(request)).to_json())
    except JobError as e:
        return error(e.status, str(e))


@routes.post("/api/jobs/{job_or_submission_id}/stop")
async def stop_job(request: web.Request) -> web.Response:
    try:
        return web.json_response({"stopped": await _off_loop(request.app[MANAGER].stop, _id(request))})
    except JobError as e:
        return error(e.status, str(e))


@routes.delete("/api/jobs/{job_or_submission_id}")
async def delete_job(request: web.Request) -> web.Response:
    try:
        return web.json_response({"deleted": await _off_loop(request.app[MANAGER].delete, _id(request))})
    except JobError as e:
        return error(e.status, str(e))


@routes.get("/api/jobs/{job_or_submission_id}/logs")
async def get_logs(request: web.Request) -> web.Response:
    try:
        return web.json_response({"logs": await _off_loop(request.app[MANAGER].logs, _id(request))})
    except JobError as e:
        return error(e.status, str(e))


@routes.get("/api/jobs/{job_or_submission_id}/logs/tail")
async def tail_logs(request: web.Request) -> web.StreamResponse:
    manager = request.app[MANAGER]
    try:
        manager.get(_id(request))
    except JobError as e:
        return error(e.status, str(e))
    ws = web.WebSocketResponse()
    await ws.prepare(request)

    def connected() -> bool:
        return request.transport is not None and not request.transport.is_closing()

    try:
        async for chunk in manager.tail(_id(request), connected=connected):
            await ws.send_str(chunk)
    except ConnectionResetError:  # the client went away
        pass
    await ws.close()
    return ws
