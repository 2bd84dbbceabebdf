"""The dashboard's HTTP side against a real embedded cluster: pages, browser sign-in, CSRF rules, kill.

Browser behaviour itself is in test_browser.py; here plain HTTP shows what the head accepts and refuses.
"""

from __future__ import annotations

import time

import pytest
import requests

import spindle
from spindle._head.dashboard import auth
from tests.dashboard.conftest import Dashboard

CSRF = {auth.CSRF_HEADER: "1"}


def _login(d: Dashboard) -> requests.Session:
    s = requests.Session()
    r = s.post(d.url + "/api/spindle/login", json={"token": d.token}, timeout=10)
    assert r.status_code == 200, r.text
    return s


def test_the_pages_are_served_without_the_token_and_hold_no_cluster_data(dashboard: Dashboard) -> None:
    r = requests.get(dashboard.url + "/", timeout=10)
    assert r.status_code == 200 and "<title>Spindle dashboard</title>" in r.text
    assert dashboard.token not in r.text
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    js = requests.get(dashboard.url + "/static/app.js", timeout=10)
    assert js.status_code == 200 and "javascript" in js.headers["Content-Type"]
    assert requests.get(dashboard.url + "/static/vendor/uplot/uPlot.esm.js", timeout=10).status_code == 200
    assert requests.get(dashboard.url + "/static/../api/version", timeout=10).status_code in (401, 404)


def test_the_api_refuses_a_request_with_no_token_and_no_login(dashboard: Dashboard) -> None:
    r = requests.get(dashboard.url + "/api/spindle/whoami", timeout=10)
    assert r.status_code == 401 and "Bearer" in r.json()["error"]


def test_a_wrong_token_is_refused_at_sign_in_and_sets_no_cookie(dashboard: Dashboard) -> None:
    s = requests.Session()
    r = s.post(dashboard.url + "/api/spindle/login", json={"token": "wrong"}, timeout=10)
    assert r.status_code == 401 and "refused" in r.json()["error"]
    assert "Set-Cookie" not in r.headers
    assert s.get(dashboard.url + "/api/spindle/whoami", timeout=10).status_code == 401


def test_sign_in_rejects_bodies_that_are_not_a_small_json_token(dashboard: Dashboard) -> None:
    url = dashboard.url + "/api/spindle/login"
    assert requests.post(url, data=b"x" * 10000, timeout=10).status_code == 400
    assert requests.post(url, data=b"not json", timeout=10).status_code == 400
    assert requests.post(url, json={"token": 5}, timeout=10).status_code == 400


def test_signing_in_sets_an_httponly_samesite_strict_cookie_that_the_api_accepts(dashboard: Dashboard) -> None:
    s = requests.Session()
    r = s.post(dashboard.url + "/api/spindle/login", json={"token": dashboard.token}, timeout=10)
    assert r.status_code == 200
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and dashboard.token not in cookie
    assert s.get(dashboard.url + "/api/spindle/whoami", timeout=10).status_code == 200
    assert s.get(dashboard.url + "/api/jobs/", timeout=10).status_code == 200
    out = s.post(dashboard.url + "/api/spindle/logout", timeout=10)
    assert "Max-Age=0" in out.headers["Set-Cookie"]
    assert s.get(dashboard.url + "/api/spindle/whoami", timeout=10).status_code == 401


def test_a_cookie_from_another_token_is_refused_with_a_sign_in_again_message(dashboard: Dashboard) -> None:
    r = requests.get(dashboard.url + "/api/spindle/whoami", timeout=10,
                     headers={"Cookie": f"{auth.COOKIE}={auth.cookie_value('old')}"})
    assert r.status_code == 401 and "sign in again" in r.json()["error"]


@spindle.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n


def _wait_dead(handle: object) -> None:
    deadline, delay = time.monotonic() + 30, 0.05
    while time.monotonic() < deadline:
        try:
            spindle.get(handle.incr.remote(), timeout=10)  # type: ignore[attr-defined]
        except spindle.exceptions.RayActorError:
            return
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    pytest.fail("the actor still answers after the kill")


def test_a_cookie_kill_without_the_csrf_header_or_from_another_origin_is_refused(dashboard: Dashboard) -> None:
    a = Counter.remote()
    assert spindle.get(a.incr.remote(), timeout=60) == 1
    s = _login(dashboard)
    url = f"{dashboard.url}/api/spindle/actors/{a.actor_id}/kill"  # type: ignore[attr-defined]
    r = s.post(url, json={"no_restart": True}, timeout=10)
    assert r.status_code == 403 and auth.CSRF_HEADER in r.json()["error"]
    r = s.post(url, json={"no_restart": True}, timeout=10, headers={**CSRF, "Origin": "http://127.0.0.1:1"})
    assert r.status_code == 403 and "another origin" in r.json()["error"]
    assert s.get(url, timeout=10).status_code == 405
    assert spindle.get(a.incr.remote(), timeout=30) == 2  # still alive


def test_a_signed_in_page_kills_an_actor_and_it_stays_dead(dashboard: Dashboard) -> None:
    a = Counter.remote()
    assert spindle.get(a.incr.remote(), timeout=60) == 1
    s = _login(dashboard)
    origin = dashboard.url
    r = s.post(f"{dashboard.url}/api/spindle/actors/{a.actor_id}/kill", json={"no_restart": True},  # type: ignore[attr-defined]
               headers={**CSRF, "Origin": origin}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"actor_id": a.actor_id, "killed": True}  # type: ignore[attr-defined]
    _wait_dead(a)


def test_a_program_kills_an_actor_with_the_bearer_token_and_bad_ids_get_clear_errors(dashboard: Dashboard) -> None:
    a = Counter.remote()
    assert spindle.get(a.incr.remote(), timeout=60) == 1
    bearer = {"Authorization": f"Bearer {dashboard.token}"}
    r = requests.post(f"{dashboard.url}/api/spindle/actors/{a.actor_id}/kill", headers=bearer, timeout=30)  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    _wait_dead(a)
    r = requests.post(f"{dashboard.url}/api/spindle/actors/{'ab' * 16}/kill", headers=bearer, timeout=10)
    assert r.status_code == 404 and "no actor" in r.json()["error"]
    r = requests.post(f"{dashboard.url}/api/spindle/actors/zz/kill", headers=bearer, timeout=10)
    assert r.status_code == 400 and "not an actor id" in r.json()["error"]
    r = requests.post(f"{dashboard.url}/api/spindle/actors/{'ab' * 16}/kill", headers=bearer, timeout=10,
                      json={"no_restart": "yes"})
    assert r.status_code == 400
