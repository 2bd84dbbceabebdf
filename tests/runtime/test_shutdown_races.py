"""A driver shutting down while its background threads still talk to the cluster (real embedded cluster).

A lease can be granted just as the driver closes its channels (shutdown, or the interpreter exiting):
the lease thread then finds the worker's channel closed. It must hand the lease straight back to its
node, not die with an unhandled ``ValueError: Cannot invoke RPC: Channel closed!`` and leave the
worker lent to nobody until the agent reclaims it.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

import spindle
from spindle._core import context, leases
from spindle._core.task_records import KeyQueue
from spindle._proto import pb, rpc
from spindle._rpc.channels import Channels


@pytest.fixture
def one_cpu() -> Iterator[None]:
    spindle.init(num_cpus=1, include_dashboard=False)
    try:
        yield
    finally:
        spindle.shutdown()


def _lease(channels: Channels, agent: str, job_id: bytes, wait_s: float) -> pb.LeaseReply:
    """Ask the node for its one CPU; the agent waits up to ``wait_s`` for it to be free."""
    request = pb.LeaseRequest(resources=pb.Resources(amounts={"CPU": 1.0}), job_id=job_id, timeout_s=wait_s)
    reply: pb.LeaseReply = rpc.NodeAgentStub(channels.get(agent)).RequestLease(request, metadata=channels.metadata,
                                                                               timeout=wait_s + 60)
    return reply


def test_a_lease_granted_as_the_drivers_channels_close_goes_back_to_its_node_at_once(one_cpu: None) -> None:
    cw = context.core()
    outside = Channels(cw.token)  # a second client, to see what the node has left to lend
    try:
        granted = _lease(cw.channels, cw.agent_address, cw.job_id, 60)  # its warm worker may still be booting
        assert granted.status == "GRANTED", granted
        assert _lease(outside, cw.agent_address, cw.job_id, 0.5).status == "BUSY"  # its only CPU is lent out
        cw.channels.close()  # shutdown closes the channels just after the node granted the lease
        queue = KeyQueue(key=("shutdown-race",), resources={"CPU": 1.0}, strategy=pb.SchedulingStrategy())
        leases.granted(cw.submitter, queue, granted, cw.agent_address)  # no "Channel closed!" escapes
        assert queue.leases == []
        # back already, not after the agent's reclaim of an unused lease (5 s later): no waiting needed
        again = _lease(outside, cw.agent_address, cw.job_id, 0.5)
        assert again.status == "GRANTED", again
        rpc.NodeAgentStub(outside.get(cw.agent_address)).ReturnLease(
            pb.ReturnLeaseRequest(lease_id=again.lease_id), metadata=outside.metadata, timeout=30)
    finally:
        outside.close()


def test_a_stub_asked_for_after_the_channels_closed_is_a_cancelled_rpc_error_not_a_crash() -> None:
    # gRPC 1.85 kills the process (SIGSEGV) when a stub is built on a closed channel: Channels never does that
    channels = Channels("token")
    channels.get("127.0.0.1:9")
    channels.close()
    with pytest.raises(grpc.RpcError) as info:
        channels.stub("127.0.0.1:9", rpc.HeadStub)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    assert "shutting down" in str(info.value)
