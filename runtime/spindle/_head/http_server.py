"""The head's HTTP server (default port 8265): the Jobs REST API now, the dashboard later.

One aiohttp application; each feature adds its routes from its own module (spindle._head.jobs.routes
for jobs). Every request must carry the cluster token as ``Authorization: Bearer <token>``; every
error is JSON ``{"error": "..."}``. The server runs on its own event loop in a thread of the head
process, bound to the same host as the head's gRPC port.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import socket
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from spindle._head.jobs import routes as job_routes
from spindle._head.jobs.manager import JobManager
from spindle._head.jobs.packages import PackageStore

log = logging.getLogger("spindle.head.http")

DEFAULT_PORT = 8265
RAY_API_VERSION = "2.40.0"  # the Ray Jobs API whose paths and fields this server speaks (Ray clients check >= 1.9)
MAX_UPLOAD_BYTES = 512 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _auth_middleware(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # checked from the headers alone: an unauthenticated body is never read
        given = request.headers.get("Authorization", "").encode()
        alt = request.headers.get("x-spindle-token", "").encode()
        # Ray's fallback header for proxies that own Authorization (KubeRay, Ray's own clients behind one)
        ray_alt = request.headers.get("X-Ray-Authorization", "").encode()
        if not (hmac.compare_digest(given, expected) or (alt and hmac.compare_digest(alt, token.encode()))
                or (ray_alt and hmac.compare_digest(ray_alt, expected))):
            why = "no 'Authorization: Bearer <token>' header" if not given else "the token was refused"
            return web.json_response(
                {"error": f"Unauthorized: {why}. Pass the cluster token (SPINDLE_TOKEN, or the cluster's Secret) as "
                          "'Authorization: Bearer <token>'."}, status=401)
        try:
            return await handler(request)
        except web.HTTPException as e:  # routing errors (404, 405, 413) as JSON too
            return web.json_response({"error": f"{e.status} {e.reason}: {request.method} {request.path}"},
                                     status=e.status)
        except Exception as e:
            log.exception("%s %s failed", request.method, request.path)
            return web.json_response({"error": f"internal error: {type(e).__name__}: {e}"}, status=500)

    return middleware


def make_app(token: str, manager: JobManager, packages: PackageStore, session: str = "") -> web.Application:
    app = web.Application(middlewares=[_auth_middleware(token)], client_max_size=MAX_UPLOAD_BYTES)
    app[job_routes.MANAGER] = manager
    app[job_routes.PACKAGES] = packages

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
