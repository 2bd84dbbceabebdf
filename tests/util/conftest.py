"""A local Spindle cluster for the utility tests that need real actors."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

import spindle


@pytest.fixture(scope="package")
def cluster() -> Iterator[ModuleType]:
    """The `spindle` module with a 2-CPU local cluster running (reused if already up)."""
    owned = not spindle.is_initialized()
    if owned:
        spindle.init(num_cpus=2, log_to_driver=False)
    yield spindle
    if owned:
        spindle.shutdown()
