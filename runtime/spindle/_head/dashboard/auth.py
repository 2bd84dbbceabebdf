"""Who may call the head's HTTP API: the Bearer token for programs, a login cookie for browsers.

Programs (the job SDK, the CLI, curl) send ``Authorization: Bearer <token>`` (or ``x-spindle-token``, or
Ray's ``X-Ray-Authorization: Bearer <token>``).
A browser signs in once on the login form; the head then sets the ``spindle_token`` cookie (HttpOnly,
SameSite=Strict) whose value is derived from the token with an HMAC, so the cookie alone never reveals
the cluster token (which also opens the gRPC ports).

A cookie is sent by the browser on its own, so cookie-authenticated requests follow CSRF rules
(``csrf_refusal``): SameSite=Strict keeps other sites' pages from using it, but other ports of the same
host are the same *site*, so on top of it a state-changing request must carry the custom header
``x-spindle-csrf`` (a cross-origin page cannot add one without a CORS preflight, which this server never
grants) and, when the browser names an ``Origin``, it must be this server's own; WebSocket upgrades
(which browsers never preflight) must come from this server's origin too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from http.cookies import SimpleCookie

COOKIE = "spindle_token"
CSRF_HEADER = "x-spindle-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_COOKIE_CONTEXT = b"spindle-dashboard-session-v1"
COOKIE_MAX_AGE_S = 7 * 24 * 3600


def cookie_value(token: str) -> str:
    """The login cookie's value for a cluster token (an HMAC of it: stable per token, never the token)."""
    return hmac.new(token.encode(), _COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def header_token_ok(headers: Mapping[str, str], token: str) -> bool | None:
    """True/False when the request names a token in its headers (right/wrong), None when it names none."""
    bearer = headers.get("Authorization", "")
    alt = headers.get("x-spindle-token", "")
    # Ray's fallback header for proxies that own Authorization (KubeRay, Ray's own clients behind one)
    ray_alt = headers.get("X-Ray-Authorization", "")
    if not bearer and not alt and not ray_alt:
        return None
    expected = f"Bearer {token}".encode()
    return (bool(bearer) and hmac.compare_digest(bearer.encode(), expected)) or \
        (bool(alt) and token_matches(alt, token)) or (bool(ray_alt) and hmac.compare_digest(ray_alt.encode(), expected))


def cookie_ok(cookie_header: str, token: str) -> bool | None:
    """True/False when the request carries the login cookie (valid/stale), None when it carries none."""
    if not cookie_header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except Exception:  # a malformed Cookie header is as good as none
        return None
    morsel = jar.get(COOKIE)
    if morsel is None:
        return None
    return hmac.compare_digest(morsel.value.encode(), cookie_value(token).encode())


def csrf_refusal(method: str, origin: str | None, own_origin: str, csrf_header: str | None,
                 websocket: bool) -> str | None:
    """Why a cookie-authenticated request is refused as possibly cross-site, or None when it may proceed."""
    if origin is not None and origin != own_origin:
        return f"the request comes from another origin ({origin}); this dashboard only accepts its own pages"
    if websocket and origin is None:
        return "a WebSocket opened with the login cookie must name its Origin"
    if method.upper() not in SAFE_METHODS and not csrf_header:
        return (f"a {method} made with the login cookie must carry the '{CSRF_HEADER}' header "
                "(the dashboard's pages send it); programs should send 'Authorization: Bearer <token>'")
    return None


def set_cookie_header(token: str, secure: bool) -> str:
    """The Set-Cookie header value that signs a browser in."""
    parts = [f"{COOKIE}={cookie_value(token)}", "Path=/", "HttpOnly", "SameSite=Strict", f"Max-Age={COOKIE_MAX_AGE_S}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def clear_cookie_header(secure: bool) -> str:
    parts = [f"{COOKIE}=", "Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=0"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
