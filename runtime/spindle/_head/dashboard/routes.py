"""The dashboard's own routes: the pages, the browser login/logout, and killing an actor.

The pages are static files (``static/``: HTML, CSS and ES modules, plus the vendored uPlot chart
library) that hold no cluster data, so they are served without the token: their scripts fetch the data
from the state API with the login cookie, and show the login form when the head answers 401.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING

from aiohttp import web

from spindle._head.dashboard import auth

if TYPE_CHECKING:
    from spindle._head.head_state import HeadState

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
LOGIN_MAX_BYTES = 4096
TOKEN = web.AppKey("dashboard_token", str)
HEAD_STATE = web.AppKey("dashboard_head_state", object)

# what the pages may load and connect to: only this server (the dashboard works with no internet)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_PUBLIC_POSTS = frozenset({"/api/spindle/login", "/api/spindle/logout"})


def is_public(method: str, path: str) -> bool:
    """The paths anyone may fetch: the pages (no data in them) and the login/logout forms."""
    if ".." in path or "\\" in path:  # never let a crafted static path reach an API route unauthenticated
        return False
    if method in ("GET", "HEAD"):
        return path in ("/", "/index.html", "/favicon.ico") or path.startswith("/static/")
    return method == "POST" and path in _PUBLIC_POSTS


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, "index.html"), headers={"Cache-Control": "no-cache"})


async def favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, "favicon.svg"), headers={"Content-Type": "image/svg+xml"})


async def login(request: web.Request) -> web.Response:
    if request.content_length is None or request.content_length > LOGIN_MAX_BYTES:
        return error(400, f"send the token as a JSON body {{\"token\": \"...\"}} of at most {LOGIN_MAX_BYTES} bytes")
    raw = await request.content.read(LOGIN_MAX_BYTES)
    try:
        given = json.loads(raw)["token"]
        if not isinstance(given, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return error(400, "send the token as a JSON body {\"token\": \"...\"}")
    token = request.app[TOKEN]
    if not given.strip() or not auth.token_matches(given.strip(), token):
        return error(401, "Unauthorized: the token was refused. Use the cluster token (the SPINDLE_TOKEN that "
                          "'spindle start' printed, the link printed by init(), or the cluster's Secret).")
    resp = web.json_response({"ok": True})
    resp.headers["Set-Cookie"] = auth.set_cookie_header(token, secure=request.secure)
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def logout(request: web.Request) -> web.Response:
    resp = web.json_response({"ok": True})
    resp.headers["Set-Cookie"] = auth.clear_cookie_header(secure=request.secure)
    return resp


async def whoami(request: web.Request) -> web.Response:
    """A cheap authenticated call: the pages use it to learn whether they are signed in."""
    return web.json_response({"ok": True})


async def kill_actor(request: web.Request) -> web.Response:
    state: HeadState | None = request.app[HEAD_STATE]  # type: ignore[assignment]
    raw_id = request.match_info["actor_id"]
    try:
        actor_id = bytes.fromhex(raw_id)
    except ValueError:
        return error(400, f"{raw_id!r} is not an actor id (hex, as listed by /api/v0/actors)")
    no_restart = True
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "the request body is not valid JSON")
        if isinstance(body, dict) and "no_restart" in body:
            if not isinstance(body["no_restart"], bool):
                return error(400, "no_restart must be true or false")
            no_restart = body["no_restart"]
    if state is None:
        return error(503, "this head serves no actors (it was started without its cluster state)")
    with state.lock:
        rec = state.actors.get(actor_id)
        known = rec is not None
    if not known:
        return error(404, f"no actor {raw_id} in this cluster")
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: state.kill_actor(actor_id, no_restart, reason="killed from the dashboard"))
    return web.json_response({"actor_id": raw_id, "killed": True})


def setup(app: web.Application, token: str, state: HeadState | None) -> None:
    app[TOKEN] = token
    app[HEAD_STATE] = state
    app.router.add_get("/", index)
    app.router.add_get("/index.html", index)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    app.router.add_post("/api/spindle/login", login)
    app.router.add_post("/api/spindle/logout", logout)
    app.router.add_get("/api/spindle/whoami", whoami)
    app.router.add_post("/api/spindle/actors/{actor_id}/kill", kill_actor)
    app.on_response_prepare.append(_static_headers)


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if is_public(request.method, request.path):
        for k, v in PAGE_HEADERS.items():
            response.headers.setdefault(k, v)
