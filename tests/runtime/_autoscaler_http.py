"""Calling the head's autoscaler HTTP API from tests (with the cluster token, as an autoscaler would)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.runtime._nodes import Cluster


def call(c: Cluster, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(c.local.dashboard_address + path, data=data, method="POST" if data else "GET",
                                 headers={"Authorization": f"Bearer {token or c.local.token}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def state(c: Cluster) -> dict[str, Any]:
    code, body = call(c, "/api/autoscaler/state")
    assert code == 200, body
    return body  # type: ignore[no-any-return]


def row(c: Cluster, node_id: str) -> dict[str, Any]:
    return next(n for n in state(c)["nodes"] if n["node_id"] == node_id)
