"""The placement and retry policies are pure functions: checked here on plain data, no processes."""

from spindle._scheduling import NodeView, Placer, Strategy, actor_restart_decision, task_should_retry


def node(nid: str, cpu_total: float, cpu_free: float, **extra: float) -> NodeView:
    return NodeView(nid, f"{nid}:1", {"CPU": cpu_total, **extra}, {"CPU": cpu_free, **extra})


def test_default_prefers_the_local_node_when_it_has_room() -> None:
    p = Placer().place({"CPU": 1}, Strategy(), [node("a", 2, 1), node("b", 8, 8)], "a")
    assert (p.decision, p.node_id) == ("local", "a")


def test_default_spills_to_the_least_loaded_node_when_local_is_full() -> None:
    p = Placer().place({"CPU": 1}, Strategy(), [node("a", 2, 0), node("b", 4, 1), node("c", 4, 3)], "a")
    assert (p.decision, p.node_id) == ("remote", "c")


def test_waits_locally_when_every_feasible_node_is_busy() -> None:
    p = Placer().place({"CPU": 1}, Strategy(), [node("a", 2, 0), node("b", 2, 0)], "a")
    assert (p.decision, p.node_id) == ("wait", "a")


def test_a_request_no_node_can_ever_satisfy_is_infeasible() -> None:
    p = Placer().place({"CPU": 1, "GPU": 1}, Strategy(), [node("a", 2, 2)], "a")
    assert p.decision == "infeasible"
    assert "GPU" in p.reason


def test_custom_resources_route_to_the_node_that_has_them() -> None:
    p = Placer().place({"CPU": 1, "special": 1}, Strategy(), [node("a", 2, 2), node("b", 2, 2, special=1)], "a")
    assert (p.decision, p.node_id) == ("remote", "b")


def test_spread_round_robins_over_nodes_with_room() -> None:
    placer = Placer()
    nodes = [node("a", 2, 2), node("b", 2, 2)]
    picks = [placer.place({"CPU": 1}, Strategy("SPREAD"), nodes, "a").node_id for _ in range(4)]
    assert picks == ["a", "b", "a", "b"]


def test_hard_node_affinity_to_a_dead_node_is_infeasible_and_soft_falls_back() -> None:
    nodes = [node("a", 2, 2), NodeView("b", "b:1", {"CPU": 2}, {"CPU": 2}, alive=False)]
    hard = Placer().place({"CPU": 1}, Strategy("NODE_AFFINITY", "b"), nodes, "a")
    soft = Placer().place({"CPU": 1}, Strategy("NODE_AFFINITY", "b", soft=True), nodes, "a")
    assert hard.decision == "infeasible"
    assert (soft.decision, soft.node_id) == ("local", "a")


def test_node_affinity_waits_for_a_busy_target_instead_of_moving() -> None:
    p = Placer().place({"CPU": 1}, Strategy("NODE_AFFINITY", "b"), [node("a", 2, 2), node("b", 2, 0)], "a")
    assert (p.decision, p.node_id) == ("remote", "b")
    assert p.reason == "busy"


def test_actor_restart_budget() -> None:
    assert actor_restart_decision(0, 0, intended=False) == "dead"
    assert actor_restart_decision(2, 1, intended=False) == "restart"
    assert actor_restart_decision(2, 2, intended=False) == "dead"
    assert actor_restart_decision(-1, 100, intended=False) == "restart"
    assert actor_restart_decision(5, 0, intended=True) == "dead"


def test_task_retry_rules() -> None:
    assert task_should_retry(3, app_error=False, retry_exceptions=False, error=None)
    assert not task_should_retry(0, app_error=False, retry_exceptions=False, error=None)
    assert task_should_retry(-1, app_error=False, retry_exceptions=False, error=None)
    assert not task_should_retry(3, app_error=True, retry_exceptions=False, error=ValueError())
    assert task_should_retry(3, app_error=True, retry_exceptions=True, error=ValueError())
    assert task_should_retry(3, app_error=True, retry_exceptions=(ValueError,), error=ValueError())
    assert not task_should_retry(3, app_error=True, retry_exceptions=(KeyError,), error=ValueError())
