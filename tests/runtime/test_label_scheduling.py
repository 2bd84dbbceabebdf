"""Scheduling by node labels (Ray's label_selector option and NodeLabelSchedulingStrategy): the pure
policy with exact expectations, then tasks and actors on a real cluster of three labelled nodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import spindle
from spindle import _labels
from spindle._scheduling import NodeView, Placer, Strategy
from spindle.util.scheduling_strategies import DoesNotExist, Exists, In, NodeLabelSchedulingStrategy, NotIn
from tests.runtime._nodes import Cluster


def test_label_selector_values_parse_as_in_ray() -> None:
    assert _labels.parse_selector({"zone": "us-1", "tier": "!spot", "gpu": "in(a100, h100)", "os": "!in(win,mac)"}) == [
        ("zone", "in", ("us-1",)), ("tier", "not_in", ("spot",)), ("gpu", "in", ("a100", "h100")),
        ("os", "not_in", ("win", "mac"))]
    with pytest.raises(ValueError, match="Invalid label selector value `us 1`"):
        _labels.parse_selector({"zone": "us 1"})
    with pytest.raises(ValueError, match="Invalid label key name"):
        _labels.parse_selector({"-bad": "x"})
    with pytest.raises(ValueError, match="must be a dict"):
        _labels.parse_selector(["zone"])


def test_label_expressions_match_as_kubernetes_does() -> None:
    labels = {"zone": "us-1", "disk": "ssd"}
    assert _labels.matches(labels, [("zone", "in", ("us-1", "us-2"))])
    assert not _labels.matches(labels, [("zone", "in", ("eu",))])
    assert _labels.matches(labels, [("tier", "not_in", ("spot",))])  # absent key: not in
    assert not _labels.matches(labels, [("disk", "not_in", ("ssd",))])
    assert _labels.matches(labels, [("disk", "exists", ())]) and not _labels.matches(labels, [("gpu", "exists", ())])
    assert _labels.matches(labels, [("gpu", "not_exists", ())])


def test_the_placer_keeps_hard_label_constraints_and_prefers_soft_ones() -> None:
    nodes = [NodeView("a", "a:1", {"CPU": 2}, {"CPU": 2}, labels={"zone": "us"}),
             NodeView("b", "b:1", {"CPU": 2}, {"CPU": 2}, labels={"zone": "eu", "disk": "ssd"}),
             NodeView("c", "c:1", {"CPU": 2}, {"CPU": 2}, labels={"zone": "eu"})]
    placer = Placer()
    eu = Strategy(labels_hard=(("zone", "in", ("eu",)),))
    assert placer.place({"CPU": 1}, eu, nodes, "a").node_id in ("b", "c")
    ssd = Strategy(labels_hard=(("zone", "in", ("eu",)),), labels_soft=(("disk", "exists", ()),))
    assert placer.place({"CPU": 1}, ssd, nodes, "c").node_id == "b"
    nowhere = placer.place({"CPU": 1}, Strategy(labels_hard=(("zone", "in", ("ap",)),)), nodes, "a")
    assert nowhere.decision == "infeasible" and "zone in (ap)" in nowhere.reason
    anywhere = placer.place({"CPU": 1}, Strategy(labels_soft=(("zone", "in", ("ap",)),)), nodes, "a")
    assert anywhere.decision == "local"  # no node matches the soft expression: any node will do


def test_node_label_strategy_arguments_are_checked_as_in_ray() -> None:
    with pytest.raises(ValueError, match="cannot both be empty"):
        NodeLabelSchedulingStrategy({})
    with pytest.raises(ValueError, match="non-empty tuple"):
        In()
    with pytest.raises(ValueError, match="must be str"):
        NotIn(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be a map"):
        NodeLabelSchedulingStrategy(["zone"])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def labelled() -> Iterator[dict[str, str]]:
    c = Cluster(num_cpus=1)
    try:
        us = c.add_node(num_cpus=1, labels={"zone": "us-1", "disk": "ssd"})
        eu = c.add_node(num_cpus=1, labels={"zone": "eu-1"})
        yield {"local": c.local.node_id, "us": us.node_id, "eu": eu.node_id}
    finally:
        spindle.shutdown()
        c.close()


@spindle.remote
def where() -> str:
    return spindle.get_runtime_context().get_node_id()


@spindle.remote
class Here:
    def node(self) -> str:
        return spindle.get_runtime_context().get_node_id()


def test_tasks_and_actors_with_a_label_selector_run_only_on_matching_nodes(labelled: dict[str, str]) -> None:
    for _ in range(3):
        assert spindle.get(where.options(label_selector={"zone": "eu-1"}).remote(), timeout=60) == labelled["eu"]
        assert spindle.get(where.options(label_selector={"zone": "in(us-1,ap-1)"}).remote(),
                           timeout=60) == labelled["us"]
    not_eu = {spindle.get(where.options(label_selector={"zone": "!eu-1"}).remote(), timeout=60) for _ in range(6)}
    assert labelled["eu"] not in not_eu
    actor = Here.options(label_selector={"disk": "ssd"}).remote()
    assert spindle.get(actor.node.remote(), timeout=60) == labelled["us"]


def test_node_label_scheduling_strategy_hard_and_soft(labelled: dict[str, str]) -> None:
    hard = NodeLabelSchedulingStrategy({"zone": In("eu-1", "ap-1")})
    assert spindle.get(where.options(scheduling_strategy=hard).remote(), timeout=60) == labelled["eu"]
    soft = NodeLabelSchedulingStrategy({"zone": Exists()}, soft={"disk": In("ssd")})
    assert spindle.get(where.options(scheduling_strategy=soft).remote(), timeout=60) == labelled["us"]
    unlabelled = NodeLabelSchedulingStrategy({"zone": DoesNotExist()})
    assert spindle.get(Here.options(scheduling_strategy=unlabelled).remote().node.remote(),
                       timeout=60) == labelled["local"]


def test_work_no_node_can_match_waits_instead_of_running_elsewhere(labelled: dict[str, str]) -> None:
    ref = where.options(label_selector={"zone": "ap-1"}).remote()
    ready, _ = spindle.wait([ref], timeout=2)
    assert ready == []  # infeasible for now: it waits for a matching node, as in Ray
    spindle.cancel(ref)
