"""The head's HTTP server (default port 8265): the Jobs REST API, the state API and the dashboard.

One aiohttp application; each feature adds its routes from its own module (spindle._head.jobs.routes
for jobs, spindle._head.dashboard.routes for the pages). Every API request must carry the cluster token
as ``Authorization: Bearer <token>``, or, from a signed-in browser, the login cookie (the CSRF rules are
in spindle._head.dashboard.auth); every error is JSON ``{"error": "..."}``. The server runs on its own
event loop in a thread of the head process, bound to the same host as the head's gRPC port.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from spindle._head import autoscaler_api
from spindle._head.dashboard import auth
from spindle._head.dashboard import routes as dashboard_routes
from spindle._head.jobs import routes as job_routes
from spindle._head.jobs.manager import JobManager
from spindle._packages import PackageStore

if TYPE_CHECKING:
    from spindle._head.head_state import HeadState

log = logging.getLogger("spindle.head.http")

DEFAULT_PORT = 8265
RAY_API_VERSION = "2.40.0"  # the Ray Jobs API whose paths and fields this server speaks (Ray clients check >= 1.9)
MAX_UPLOAD_BYTES = 512 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _own_host(request: web.Request) -> str:
    return request.host


def _auth_middleware(token: str) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # checked from the headers alone: an unauthenticated body is never read (the public pages and the
        # login form, which reads at most a few KiB, are the exceptions)
        if not dashboard_routes.is_public(request.method, request.path):
            refusal = _refusal(request, token)
            if refusal is not None:
                return refusal
        try:
            return await handler(request)
        except web.HTTPException as e:  # routing errors (404, 405, 413) as JSON too
            return web.json_response({"error": f"{e.status} {e.reason}: {request.method} {request.path}"},
                                     status=e.status)
        except Exception as e:
            log.exception("%s %s failed", request.method, request.path)
            return web.json_response({"error": f"internal error: {type(e).__name__}: {e}"}, status=500)

    return middleware


def _refusal(request: web.Request, token: str) -> web.Response | None:
    """The 401/403 answer for a request that may not proceed, or None (Bearer header, or login cookie + CSRF rules)."""
    by_header = auth.header_token_ok(request.headers, token)
    if by_header:
        return None
    if by_header is None:
        by_cookie = auth.cookie_ok(request.headers.get("Cookie", ""), token)
        if by_cookie:
            origin = request.headers.get("Origin")
            origin_host = origin.split("://", 1)[-1] if origin and origin != "null" else origin
            why = auth.csrf_refusal(request.method, origin_host, _own_host(request),
                                    request.headers.get(auth.CSRF_HEADER),
                                    request.headers.get("Upgrade", "").lower() == "websocket")
            if why is None:
                return None
            return web.json_response({"error": f"Forbidden: {why}."}, status=403)
        if by_cookie is False:
            return web.json_response({"error": "Unauthorized: the dashboard login is no longer valid (the cluster "
                                      "token changed): sign in again with the current token."}, status=401)
    why = "no 'Authorization: Bearer <token>' header" if by_header is None else "the token was refused"
    return web.json_response(
        {"error": f"Unauthorized: {why}. Pass the cluster token (SPINDLE_TOKEN, or the cluster's Secret) as "
                  "'Authorization: Bearer <token>'."}, status=401)


def make_app(token: str, manager: JobManager, packages: PackageStore, session: str = "",
             state: HeadState | None = None) -> web.Application:
    app = web.Application(middlewares=[_auth_middleware(token)], client_max_size=MAX_UPLOAD_BYTES)
    app[job_routes.MANAGER] = manager
    app[job_routes.PACKAGES] = packages
    dashboard_routes.setup(app, token, state)
    if state is not None:  # the HeadState of this process (absent in job-API-only tests)
        app[autoscaler_api.HEAD] = state
        app.add_routes(autoscaler_api.routes)

    async def version(request: web.Request) -> web.Response:
        from spindle import __version__

        return web.json_response({"version": "2", "ray_version": RAY_API_VERSION, "ray_commit": "spindle",
                                  "session_name": session, "spindle_version": __version__})

    app.router.add_get("/api/version", version)
    app.add_routes(job_routes.routes)
    return app


def _bind(host: str, port: int, fallback: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        if not (fallback and e.errno == errno.EADDRINUSE):
            sock.close()
            raise OSError(e.errno, f"cannot listen for the job API on {host}:{port} ({e.strerror}): pass "
                                   "--dashboard-port with a free port") from None
        sock.bind((host, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class HttpServer:
    """The running server: ``port`` is the bound port; ``stop()`` closes it."""

    def __init__(self, app: web.Application, host: str, port: int, fallback: bool = False):
        self._sock = _bind(host, port, fallback)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.SockSite(self._runner, self._sock).start())
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="http-server")
        self._thread.start()

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            fut.result(timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
