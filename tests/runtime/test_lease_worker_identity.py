"""A lease's task stream names the worker it was granted on, and a process that is not that worker refuses it.

A holder stalled long enough for its lease's worker to exit could otherwise stream the lease's tasks to whichever new
worker took the old one's port. The refusal reads as a revoked lease: none of its tasks ran there, so the holder puts
them back unstarted and asks its agent for another worker. Real cluster, real worker, a raw PushTasks stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import pytest

import spindle
from spindle._core import context, lease_guard, leases
from spindle._proto import pb, rpc

pytestmark = pytest.mark.usefixtures("cluster")


@spindle.remote
def whoami() -> tuple[str, str]:
    cw = context.core()
    return cw.address, cw.worker_id


def _stream(address: str, worker_id: str) -> Iterator[pb.ResultBatch]:
    cw = context.core()
    stub = cw.channels.stub(address, rpc.CoreWorkerStub)
    metadata = (*cw.md, ("x-spindle-lease", os.urandom(16).hex()), ("x-spindle-worker", worker_id))
    return iter(stub.PushTasks(iter(()), metadata=metadata, timeout=30))


def test_a_stream_naming_another_worker_is_refused_as_a_revoked_lease() -> None:
    address, worker_id = spindle.get(whoami.remote(), timeout=60)
    with pytest.raises(grpc.RpcError) as err:
        next(_stream(address, "f" * 32))
    e = err.value
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.details().startswith(lease_guard.REVOKED) and "ffffffff, which is gone" in e.details()
    assert leases.revoked(None, None, e)  # type: ignore[arg-type]  # the holder's reading: ask for another worker
    assert spindle.get(whoami.remote(), timeout=60)[0]  # the worker still serves its own leases


def test_a_stream_naming_the_worker_it_reaches_is_served() -> None:
    address, worker_id = spindle.get(whoami.remote(), timeout=60)
    assert list(_stream(address, worker_id)) == []  # no tasks sent: the stream ends cleanly
