"""A small client for the head's autoscaler HTTP API (docs: /api/autoscaler/* in CONTRACTS C).

Why the operator talks to the head itself: the head knows which workers are busy, the operator owns the
pods, and the head pod needs no Kubernetes credentials (KubeRay's autoscaler sidecar patches the CR from
inside the head pod). Every call carries the cluster token from the cluster's Secret, has a timeout, and
fails with :class:`HeadError` naming the URL and what to check, so a dead or misconfigured head never
hangs a reconcile pass. urllib3 is the kubernetes client's own HTTP library, so this adds no dependency.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import urllib3

from ._builders import head_service_name, token_secret_name
from ._settings import OperatorSettings


class HeadError(Exception):
    """The head could not be asked (unreachable, timeout) or refused (bad token, error status)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def head_url(settings: OperatorSettings, namespace: str, cluster_name: str) -> str:
    domain = f".{settings.node.cluster_domain}" if settings.node.cluster_domain else ""
    return settings.autoscaler.head_url.format(
        service=head_service_name(cluster_name), namespace=namespace, port=settings.ports.dashboard, domain=domain
    ).rstrip("/")


class HeadClient:
    """The four autoscaler calls the operator makes, returning the head's JSON."""

    def __init__(self, base_url: str, token: str, timeout: float, pool: urllib3.PoolManager | None = None) -> None:
        self.base_url = base_url
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._timeout = urllib3.Timeout(total=timeout)
        self._pool = pool or urllib3.PoolManager(num_pools=4, maxsize=2)

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        data = None if body is None else json.dumps(body).encode()
        try:
            response = self._pool.request(
                method, url, body=data, headers=self._headers, timeout=self._timeout, retries=False
            )
        except urllib3.exceptions.HTTPError as exc:
            raise HeadError(f"{method} {url}: the head did not answer ({exc}); is the head pod running?") from exc
        text = response.data.decode(errors="replace")
        if response.status in (401, 403):
            raise HeadError(
                f"{method} {url}: the head refused the cluster token (HTTP {response.status}); the head pod "
                "reads it from the cluster's token Secret, so a recreated Secret needs a restarted head",
                response.status,
            )
        try:
            payload = json.loads(text) if text else {}
        except ValueError:
            payload = None
        if response.status >= 400 or not isinstance(payload, dict):
            detail = payload.get("error") if isinstance(payload, dict) else text[:200]
            raise HeadError(f"{method} {url}: HTTP {response.status}: {detail}", response.status)
        return payload

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/api/autoscaler/state")

    def drain(self, node_id: str, deadline_s: float, reason: str) -> dict[str, Any]:
        return self._call(
            "POST", "/api/autoscaler/drain", {"node_id": node_id, "deadline_s": deadline_s, "reason": reason}
        )

    def drain_status(self, node_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/autoscaler/drain/{node_id}")

    def undrain(self, node_id: str) -> dict[str, Any]:
        return self._call("POST", "/api/autoscaler/undrain", {"node_id": node_id})


class HeadAccess:
    """Clients for the heads of many clusters: one connection pool, tokens read once per cluster.

    ``read_token(namespace, secret_name)`` is :meth:`Kube.get_secret_value` bound to the token key; a
    token the head refuses is forgotten so the next call reads the Secret again.
    """

    def __init__(self, settings: OperatorSettings, read_token: Callable[[str, str], str | None]) -> None:
        self.settings = settings
        self._read_token = read_token
        self._tokens: dict[str, str] = {}
        self._pool = urllib3.PoolManager(num_pools=16, maxsize=2)

    def client(self, cluster: Mapping[str, Any]) -> HeadClient:
        meta = cluster["metadata"]
        token = self._tokens.get(meta["uid"])
        if token is None:
            token = self._read_token(meta["namespace"], token_secret_name(meta["name"]))
            if not token:
                raise HeadError(f"the token Secret {token_secret_name(meta['name'])} has no token yet")
            self._tokens[meta["uid"]] = token
        url = head_url(self.settings, meta["namespace"], meta["name"])
        return HeadClient(url, token, self.settings.autoscaler.request_timeout_seconds, self._pool)

    def forget(self, cluster: Mapping[str, Any], error: HeadError) -> None:
        if error.status in (401, 403):
            self._tokens.pop(cluster["metadata"]["uid"], None)
