"""A real embedded cluster with the dashboard, shared by a test module: the driver is this process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import spindle


@dataclass
class Dashboard:
    url: str
    token: str


@pytest.fixture(scope="module")
def dashboard() -> Iterator[Dashboard]:
    spindle.init(num_cpus=2)
    try:
        from spindle._core import api

        local = api._state["local"]
        assert local.dashboard_address, "the embedded cluster started no dashboard"
        yield Dashboard(local.dashboard_address, local.token)
    finally:
        spindle.shutdown()
