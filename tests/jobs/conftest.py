"""A real head + node agent with the job API on a free port, shared by a test module.

Stop grace is 1 s so the SIGKILL escalation is exercised without slowing the suite; pip is pointed
at a closed local port so the "registry unreachable" path is real and needs no network.
"""

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
class Head:
    url: str
    token: str
    procs: Any

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, headers=self.auth, timeout=30)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(self.url + path, headers=self.auth, timeout=30, **kw)

    def wait_for(self, submission_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90) -> dict[str, Any]:
        deadline, delay = time.monotonic() + timeout, 0.02
        while True:
            info: dict[str, Any] = self.get(f"/api/jobs/{submission_id}").json()
            if done(info):
                return info
            assert time.monotonic() < deadline, f"job {submission_id} stayed {info['status']}: {info}"
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def wait_terminal(self, submission_id: str, timeout: float = 90) -> dict[str, Any]:
        return self.wait_for(submission_id, lambda i: i["status"] in ("SUCCEEDED", "FAILED", "STOPPED"), timeout)


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    saved = {k: os.environ.get(k) for k in ("SPINDLE_JOB_STOP_WAIT_S", "PIP_INDEX_URL", "SPINDLE_ADDRESS")}
    os.environ.update(SPINDLE_JOB_STOP_WAIT_S="1", PIP_INDEX_URL="http://127.0.0.1:9/simple")
    os.environ.pop("SPINDLE_ADDRESS", None)
    try:
        procs = _local_cluster.start(num_cpus=2, dashboard_port=0, dashboard_port_fallback=False)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        yield Head(procs.dashboard_address, procs.token, procs)
    finally:
        procs.stop()
