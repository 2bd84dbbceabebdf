"""A real embedded cluster (head + node agent + workers as processes) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import spindle


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    spindle.init(num_cpus=2, resources={"special": 1}, log_to_driver=True)
    try:
        yield
    finally:
        spindle.shutdown()
