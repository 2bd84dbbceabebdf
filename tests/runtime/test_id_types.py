"""Ray's public id classes (``spindle.ActorID`` ...): built from hex or bytes, compared, hashed, pickled, and
round-tripping the ids the runtime context reports (on a real embedded cluster)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest

import spindle
from spindle.util import placement_group, remove_placement_group

KINDS = [spindle.ActorID, spindle.TaskID, spindle.NodeID, spindle.ObjectID, spindle.WorkerID,
         spindle.PlacementGroupID, spindle.JobID]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    spindle.init(num_cpus=1, namespace="ids")
    try:
        yield
    finally:
        spindle.shutdown()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_an_id_round_trips_through_hex_binary_and_pickle_and_is_equal_only_to_its_own_kind(kind: type) -> None:
    one = kind.from_random()
    assert len(one.binary()) == kind.size() and one.hex() == one.binary().hex()
    assert kind.from_hex(one.hex()) == one == kind.from_binary(one.binary()) == pickle.loads(pickle.dumps(one))
    assert hash(kind.from_hex(one.hex())) == hash(one) and len({one, kind.from_binary(one.binary())}) == 1
    assert one != kind.from_random() and not one.is_nil()
    assert kind.nil().is_nil() and kind.nil().hex() == "ff" * kind.size()
    other = spindle.ActorID if kind is not spindle.ActorID else spindle.TaskID
    if other.size() == kind.size():
        assert other.from_binary(one.binary()) != one


def test_bad_ids_get_a_clear_error() -> None:
    with pytest.raises(ValueError, match="ActorID is 16 bytes, got 3"):
        spindle.ActorID(b"abc")
    with pytest.raises(ValueError, match="not a 16-byte hex NodeID"):
        spindle.NodeID.from_hex("not hex")
    with pytest.raises(TypeError, match="use NodeID.from_hex"):
        spindle.NodeID("ab" * 16)  # type: ignore[arg-type]


def test_a_job_id_is_its_counter_as_four_bytes() -> None:
    assert spindle.JobID.from_int(7).int() == 7 and spindle.JobID.from_int(7).hex() == "00000007"


def test_the_runtime_contexts_ids_parse_into_the_id_classes(cluster: None) -> None:
    @spindle.remote
    class Where:
        def ids(self) -> tuple[str, str, str, str]:
            ctx = spindle.get_runtime_context()
            return ctx.get_actor_id() or "", ctx.get_task_id() or "", ctx.get_node_id(), ctx.get_worker_id()

    actor = Where.remote()
    actor_hex, task_hex, node_hex, worker_hex = spindle.get(actor.ids.remote(), timeout=60)
    assert spindle.ActorID.from_hex(actor_hex).hex() == actor_hex == actor._actor_id.hex()
    assert spindle.TaskID.from_hex(task_hex).hex() == task_hex
    assert spindle.NodeID.from_hex(node_hex) == spindle.NodeID.from_hex(spindle.get_runtime_context().get_node_id())
    assert spindle.WorkerID.from_hex(worker_hex).hex() == worker_hex
    job = spindle.JobID.from_hex(spindle.get_runtime_context().get_job_id())
    assert job.int() >= 1
    ref = spindle.put(1)
    assert spindle.ObjectID.from_hex(ref.hex()).binary() == ref.binary()
    pg = placement_group([{"CPU": 1}])
    assert isinstance(pg.id, spindle.PlacementGroupID) and spindle.PlacementGroupID.from_hex(pg.id.hex()) == pg.id
    remove_placement_group(pg)
