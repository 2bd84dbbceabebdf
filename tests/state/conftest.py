"""A real embedded-style cluster (head + agent, job API and metrics on free ports) and a driver on it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from spindle import _local_cluster


@dataclass
class Cluster:
    url: str
    metrics_url: str
    token: str
    procs: Any

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.url + path, headers=self.auth, params=params, timeout=30)

    def rows(self, kind: str, **params: Any) -> list[dict[str, Any]]:
        r = self.get(f"/api/v0/{kind}", **params)
        assert r.status_code == 200, r.text
        result: list[dict[str, Any]] = r.json()["data"]["result"]["result"]
        return result


def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    """Poll ``check`` (with backoff) until it returns something truthy; fail naming ``what``."""
    deadline, delay, last = time.monotonic() + timeout, 0.05, None
    while True:
        last = check()
        if last:
            return last
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}: last saw {last!r}"
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    saved = os.environ.pop("SPINDLE_ADDRESS", None)
    try:
        procs = _local_cluster.start(num_cpus=2, dashboard_port=0, dashboard_port_fallback=False,
                                     head_args=["--metrics-port", "0"])
    finally:
        if saved is not None:
            os.environ["SPINDLE_ADDRESS"] = saved
    try:
        yield Cluster(procs.dashboard_address, procs.metrics_address, procs.token, procs)
    finally:
        procs.stop()
