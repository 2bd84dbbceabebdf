"""The dashboard's sign-in and CSRF rules as pure functions (spindle._head.dashboard.auth)."""

from __future__ import annotations

from spindle._head.dashboard import auth
from spindle._head.dashboard.routes import is_public

TOKEN = "s3cret-token"


def test_the_cookie_value_is_derived_from_the_token_but_is_not_the_token() -> None:
    value = auth.cookie_value(TOKEN)
    assert value == auth.cookie_value(TOKEN)
    assert TOKEN not in value
    assert value != auth.cookie_value("another-token")


def test_a_header_token_is_right_wrong_or_absent() -> None:
    assert auth.header_token_ok({"Authorization": f"Bearer {TOKEN}"}, TOKEN) is True
    assert auth.header_token_ok({"x-spindle-token": TOKEN}, TOKEN) is True
    assert auth.header_token_ok({"X-Ray-Authorization": f"Bearer {TOKEN}"}, TOKEN) is True
    assert auth.header_token_ok({"Authorization": "Bearer nope"}, TOKEN) is False
    assert auth.header_token_ok({"Authorization": TOKEN}, TOKEN) is False
    assert auth.header_token_ok({}, TOKEN) is None


def test_the_login_cookie_is_valid_stale_or_absent() -> None:
    good = f"{auth.COOKIE}={auth.cookie_value(TOKEN)}"
    assert auth.cookie_ok(f"theme=dark; {good}", TOKEN) is True
    assert auth.cookie_ok(f"{auth.COOKIE}={auth.cookie_value('old-token')}", TOKEN) is False
    assert auth.cookie_ok(f"{auth.COOKIE}={TOKEN}", TOKEN) is False  # the raw token is not a login cookie
    assert auth.cookie_ok("theme=dark", TOKEN) is None
    assert auth.cookie_ok("", TOKEN) is None


def test_cookie_reads_from_the_dashboard_itself_pass_the_csrf_rules() -> None:
    assert auth.csrf_refusal("GET", None, "127.0.0.1:8265", None, websocket=False) is None
    assert auth.csrf_refusal("GET", "127.0.0.1:8265", "127.0.0.1:8265", None, websocket=False) is None


def test_a_cookie_post_needs_the_custom_header() -> None:
    why = auth.csrf_refusal("POST", "127.0.0.1:8265", "127.0.0.1:8265", None, websocket=False)
    assert why is not None and auth.CSRF_HEADER in why
    assert auth.csrf_refusal("POST", "127.0.0.1:8265", "127.0.0.1:8265", "1", websocket=False) is None
    assert auth.csrf_refusal("DELETE", None, "127.0.0.1:8265", None, websocket=False) is not None


def test_a_cookie_request_from_another_origin_is_refused_even_with_the_header() -> None:
    # another port of the same host is the same *site*: SameSite alone would let its cookie through
    why = auth.csrf_refusal("POST", "127.0.0.1:9999", "127.0.0.1:8265", "1", websocket=False)
    assert why is not None and "127.0.0.1:9999" in why
    assert auth.csrf_refusal("GET", "null", "127.0.0.1:8265", None, websocket=False) is not None


def test_a_cookie_websocket_must_name_this_origin() -> None:
    assert auth.csrf_refusal("GET", None, "127.0.0.1:8265", None, websocket=True) is not None
    assert auth.csrf_refusal("GET", "evil.example:80", "127.0.0.1:8265", None, websocket=True) is not None
    assert auth.csrf_refusal("GET", "127.0.0.1:8265", "127.0.0.1:8265", None, websocket=True) is None


def test_the_set_cookie_header_is_httponly_samesite_strict_and_secure_only_over_https() -> None:
    plain = auth.set_cookie_header(TOKEN, secure=False)
    assert plain.startswith(f"{auth.COOKIE}={auth.cookie_value(TOKEN)};")
    assert "HttpOnly" in plain and "SameSite=Strict" in plain and "Path=/" in plain and "Secure" not in plain
    assert "Secure" in auth.set_cookie_header(TOKEN, secure=True)
    assert "Max-Age=0" in auth.clear_cookie_header(secure=False)


def test_only_the_pages_and_the_login_form_are_public() -> None:
    for method, path in [("GET", "/"), ("GET", "/index.html"), ("GET", "/static/app.js"), ("HEAD", "/favicon.ico"),
                         ("POST", "/api/spindle/login"), ("POST", "/api/spindle/logout")]:
        assert is_public(method, path), (method, path)
    for method, path in [("GET", "/api/v0/tasks"), ("GET", "/api/jobs/"), ("POST", "/api/spindle/actors/ab/kill"),
                         ("POST", "/static/app.js"), ("GET", "/static/../api/v0/tasks"),
                         ("GET", "/api/spindle/login"), ("GET", "/api/spindle/events")]:
        assert not is_public(method, path), (method, path)
