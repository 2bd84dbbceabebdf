"""The operator's reconcile metrics: counted per kind and result, timed, served for Prometheus."""

from __future__ import annotations

import asyncio

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from spindle_operator import _metrics
from spindle_operator._controller import Controller, PassResult
from spindle_operator._job_controller import JobController
from spindle_operator._kube import ApiError


def sample(name: str, **labels: str) -> float:
    value = _metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_each_pass_is_counted_by_kind_and_result_and_timed() -> None:
    kind = "TestKind"

    async def ok() -> PassResult:
        return PassResult(exists=True)

    async def failing_object() -> PassResult:
        return PassResult(exists=True, failure="quota exceeded")

    async def conflict() -> PassResult:
        raise ApiError(409, "Conflict", "the object changed")

    async def broken() -> PassResult:
        raise RuntimeError("boom")

    async def run() -> None:
        await _metrics.timed(kind, ok())
        await _metrics.timed(kind, ok())
        await _metrics.timed(kind, failing_object())
        with pytest.raises(ApiError):
            await _metrics.timed(kind, conflict())
        with pytest.raises(RuntimeError):
            await _metrics.timed(kind, broken())

    asyncio.run(run())
    assert sample("spindle_operator_reconciles_total", kind=kind, result="success") == 2
    assert sample("spindle_operator_reconciles_total", kind=kind, result="failure") == 1
    assert sample("spindle_operator_reconciles_total", kind=kind, result="conflict") == 1
    assert sample("spindle_operator_reconciles_total", kind=kind, result="error") == 1
    assert sample("spindle_operator_reconcile_duration_seconds_count", kind=kind) == 5


def test_the_controllers_name_their_kinds() -> None:
    assert (Controller.kind, JobController.kind) == ("SpindleCluster", "SpindleJob")


def test_the_metrics_are_served_in_prometheus_text_format() -> None:
    _metrics.set_active("SpindleCluster", 3)
    server = _metrics.serve("127.0.0.1:0")
    try:
        r = requests.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
        assert r.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        [active] = [s for s in families["spindle_operator_managed_objects"].samples
                    if s.labels == {"kind": "SpindleCluster"}]
        assert active.value == 3
        assert "spindle_operator_reconciles" in families
        assert "spindle_operator_reconcile_duration_seconds" in families
    finally:
        server.shutdown()


@pytest.mark.parametrize("address", ["8080", "host:port", ":99999"])
def test_a_bad_metrics_address_is_refused_with_an_example(address: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        _metrics.parse_address(address)
    assert _metrics.parse_address(":8080") == ("0.0.0.0", 8080)
