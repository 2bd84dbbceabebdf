"""The head's pending-actor policy is pure: exact placements for a queue of actors on plain node data."""

from spindle._head.actor_placement import PendingActor, plan, startable, waiting_for_demand
from spindle._scheduling import NodeView, Placement, Placer, Strategy


def node(nid: str, total: dict[str, float], available: dict[str, float] | None = None) -> NodeView:
    return NodeView(nid, f"{nid}:1", dict(total), dict(total if available is None else available))


def actor(i: int, **demand: float) -> PendingActor:
    return PendingActor(bytes([i]), demand, Strategy())


def test_actors_take_free_resources_in_queue_order_and_the_rest_wait_on_the_busy_node() -> None:
    nodes = [node("a", {"CPU": 4, "GPU": 2})]
    got = plan([actor(1, GPU=1), actor(2, GPU=1), actor(3, GPU=1)], nodes, Placer())
    assert got == [Placement("remote", "a", "a:1"), Placement("remote", "a", "a:1"),
                   Placement("remote", "a", "a:1", "busy")]
    assert [startable(p) for p in got] == [True, True, False]
    assert [waiting_for_demand(p) for p in got] == [False, False, False]  # a node can run it once one frees up


def test_a_plan_leaves_the_callers_node_views_unchanged() -> None:
    nodes = [node("a", {"CPU": 2})]
    plan([actor(1, CPU=1), actor(2, CPU=1)], nodes, Placer())
    assert nodes[0].available == {"CPU": 2}


def test_an_actor_no_node_can_ever_hold_is_infeasible_and_blocks_no_other_shape() -> None:
    nodes = [node("a", {"CPU": 2})]
    got = plan([actor(1, later=1), actor(2, CPU=1), actor(3, later=1), actor(4, CPU=1)], nodes, Placer())
    assert got == [Placement("infeasible", reason="no node has {'later': 1}"), Placement("remote", "a", "a:1"),
                   Placement("infeasible", reason="no node has {'later': 1}"), Placement("remote", "a", "a:1")]
    assert [waiting_for_demand(p) for p in got] == [True, False, True, False]


def test_actors_go_to_the_least_loaded_node_that_has_room_counting_what_the_round_gave_out() -> None:
    nodes = [node("a", {"CPU": 2}), node("b", {"CPU": 2}, {"CPU": 1})]
    got = plan([actor(1, CPU=1), actor(2, CPU=1), actor(3, CPU=1), actor(4, CPU=1)], nodes, Placer())
    assert [(p.node_id, startable(p)) for p in got] == [("a", True), ("a", True), ("b", True), ("a", False)]


def test_a_thousand_actors_of_one_shape_wait_for_the_node_that_will_have_it() -> None:
    nodes = [node("a", {"CPU": 1}), node("b", {"later": 1000}, {"later": 0})]
    got = plan([actor(i % 256, later=1) for i in range(1000)], nodes, Placer())
    assert got == [Placement("remote", "b", "b:1", "busy")] * 1000
    nodes[1].available["later"] = 1000  # the resource freed up: every one of them starts
    assert all(startable(p) and p.node_id == "b" for p in plan([actor(i % 256, later=1) for i in range(1000)],
                                                                nodes, Placer()))


def test_hard_node_affinity_to_a_node_without_room_waits_while_another_shape_starts_elsewhere() -> None:
    nodes = [node("a", {"CPU": 1}, {"CPU": 0}), node("b", {"CPU": 1})]
    pinned = PendingActor(b"p", {"CPU": 1}, Strategy(kind="NODE_AFFINITY", node_id="a"))
    got = plan([pinned, actor(2, CPU=1)], nodes, Placer())
    assert got == [Placement("remote", "a", "a:1", "busy"), Placement("remote", "b", "b:1")]


def test_a_draining_node_takes_no_pending_actor() -> None:
    nodes = [node("a", {"CPU": 2})]
    nodes[0].schedulable = False
    assert plan([actor(1, CPU=1)], nodes, Placer()) == [Placement("infeasible", reason="no node has {'CPU': 1}")]
