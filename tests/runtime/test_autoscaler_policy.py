"""The scaling policy, table-driven: each case is a cluster state, demand and options, and the exact decision."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from spindle.autoscaler.policy import Decision, Demand, NodeView, Options, WorkerGroup, decide, state_from_json

CPU2 = WorkerGroup("cpu", {"CPU": 2, "memory": 4e9}, 0, 4)
GPU = WorkerGroup("gpu", {"CPU": 4, "GPU": 1}, 0, 2)
SMALL = WorkerGroup("small", {"CPU": 1}, 0, 10)
BIG = WorkerGroup("big", {"CPU": 8}, 0, 10)
SPECIAL = WorkerGroup("special", {"CPU": 1, "special": 2}, 1, 3)


def head(cpu: float = 0, avail: float | None = None) -> NodeView:
    return NodeView("head", "head", None, "ALIVE", {"CPU": cpu}, {"CPU": cpu if avail is None else avail}, None, True)


def node(nid: str, group: str, total: dict[str, float], avail: dict[str, float] | None = None,
         idle_s: float | None = None, state: str = "ALIVE") -> NodeView:
    return NodeView(nid, group, f"pod-{nid}", state, total, total if avail is None else avail, idle_s, False)


def tasks(n: int, **shape: float) -> Demand:
    return Demand(shape or {"CPU": 1}, n)


@dataclass
class Case:
    name: str
    groups: list[WorkerGroup]
    nodes: list[NodeView]
    demand: list[Demand]
    current: dict[str, int]
    replicas: dict[str, int]
    drain: tuple[str, ...] = ()
    options: Options = field(default_factory=Options)


CASES = [
    Case("no demand, no workers: nothing changes", [CPU2], [head()], [], {"cpu": 0}, {"cpu": 0}),
    Case("three one-CPU tasks on a zero-CPU head launch two 2-CPU nodes", [CPU2], [head()], [tasks(3)],
         {"cpu": 0}, {"cpu": 2}),
    Case("demand that fits the head's free CPUs launches nothing", [CPU2], [head(4)], [tasks(3)], {"cpu": 0},
         {"cpu": 0}),
    Case("demand beyond max replicas stops at max", [CPU2], [head()], [tasks(20)], {"cpu": 1}, {"cpu": 4}),
    Case("nodes asked for but not joined yet count as capacity", [CPU2], [head()], [tasks(4)], {"cpu": 2},
         {"cpu": 2}),
    Case("GPU work goes to the GPU group, which takes CPU work beside it; the rest goes to the CPU group",
         [CPU2, GPU], [head()], [tasks(1, CPU=1, GPU=1), tasks(5)], {"cpu": 0, "gpu": 0}, {"cpu": 1, "gpu": 1}),
    Case("CPU work avoids the GPU group even when it is listed first", [GPU, CPU2], [head()], [tasks(2)],
         {"cpu": 0, "gpu": 0}, {"cpu": 1, "gpu": 0}),
    Case("many small tasks prefer the group they fill best (one 8-CPU node, not eight 1-CPU)", [SMALL, BIG],
         [head()], [tasks(8)], {"small": 0, "big": 0}, {"small": 0, "big": 1}),
    Case("custom resources pick the group that has them; min replicas are kept", [CPU2, SPECIAL], [head()],
         [tasks(3, special=1)], {"cpu": 0, "special": 0}, {"cpu": 0, "special": 2}),
    Case("infeasible demand launches nothing", [CPU2], [head()], [tasks(1, CPU=16)], {"cpu": 0}, {"cpu": 0}),
    Case("Conservative: a group with no running node gets one node per round", [CPU2], [head()], [tasks(8)],
         {"cpu": 0}, {"cpu": 1}, options=Options(upscaling_mode="Conservative")),
    Case("Conservative: a group doubles at most (2 running, none pending: +2)", [CPU2],
         [head(), node("a", "cpu", {"CPU": 2}, {"CPU": 0}), node("b", "cpu", {"CPU": 2}, {"CPU": 0})],
         [tasks(20)], {"cpu": 2}, {"cpu": 4}, options=Options(upscaling_mode="Conservative")),
    Case("Conservative: a pending node uses the round's budget", [CPU2],
         [head(), node("a", "cpu", {"CPU": 2}, {"CPU": 0})], [tasks(20)], {"cpu": 2}, {"cpu": 2},
         options=Options(upscaling_mode="Conservative")),
    Case("Aggressive launches for all the demand at once", [CPU2], [head()], [tasks(8)], {"cpu": 0}, {"cpu": 4},
         options=Options(upscaling_mode="Aggressive")),
    Case("an idle node past the timeout is drained and replicas go down", [CPU2],
         [head(), node("a", "cpu", {"CPU": 2}, idle_s=61)], [], {"cpu": 1}, {"cpu": 0}, ("a",)),
    Case("an idle node before the timeout stays", [CPU2], [head(), node("a", "cpu", {"CPU": 2}, idle_s=59)], [],
         {"cpu": 1}, {"cpu": 1}),
    Case("a busy node is never drained", [CPU2], [head(), node("a", "cpu", {"CPU": 2}, {"CPU": 1}, idle_s=None)],
         [], {"cpu": 1}, {"cpu": 1}),
    Case("idle nodes go longest idle first, down to min replicas", [WorkerGroup("cpu", {"CPU": 2}, 1, 4)],
         [head(), node("a", "cpu", {"CPU": 2}, idle_s=100), node("b", "cpu", {"CPU": 2}, idle_s=300),
          node("c", "cpu", {"CPU": 2}, idle_s=200)], [], {"cpu": 3}, {"cpu": 1}, ("b", "c")),
    Case("an idle node that pending demand fits is kept, not drained", [CPU2],
         [head(), node("a", "cpu", {"CPU": 2}, idle_s=120)], [tasks(1)], {"cpu": 1}, {"cpu": 1}),
    Case("the head is never drained", [CPU2], [NodeView("head", "head", None, "ALIVE", {"CPU": 2}, {"CPU": 2},
                                                         999, True)], [], {"cpu": 0}, {"cpu": 0}),
    Case("a node of an unknown group is never drained", [CPU2],
         [head(), node("x", "other", {"CPU": 2}, idle_s=999)], [], {"cpu": 0}, {"cpu": 0}),
    Case("draining nodes stay in drain and leave replicas", [CPU2],
         [head(), node("a", "cpu", {"CPU": 2}, idle_s=None, state="DRAINING"), node("b", "cpu", {"CPU": 2})],
         [], {"cpu": 2}, {"cpu": 1}, ("a",)),
    Case("a draining node already gone from the replicas is not subtracted again", [CPU2],
         [head(), node("a", "cpu", {"CPU": 2}, state="DRAINING")], [], {"cpu": 0}, {"cpu": 0}, ("a",)),
    Case("draining nodes are not capacity: their demand launches a new node", [CPU2],
         [head(), node("a", "cpu", {"CPU": 2}, state="DRAINING")], [tasks(2)], {"cpu": 1}, {"cpu": 1}, ("a",)),
    Case("dead nodes are ignored", [CPU2], [head(), node("a", "cpu", {"CPU": 2}, state="DEAD")], [tasks(1)],
         {"cpu": 1}, {"cpu": 1}),
    Case("min replicas launch without demand", [WorkerGroup("cpu", {"CPU": 2}, 2, 4)], [head()], [], {"cpu": 0},
         {"cpu": 2}),
    Case("above max replicas: idle nodes go first (even before the timeout)", [WorkerGroup("cpu", {"CPU": 2}, 0, 1)],
         [head(), node("a", "cpu", {"CPU": 2}, idle_s=5), node("b", "cpu", {"CPU": 2}, {"CPU": 0})], [],
         {"cpu": 2}, {"cpu": 1}, ("a",)),
    Case("request_resources launches at once, past Conservative's limit", [CPU2], [head()],
         [Demand({"CPU": 1}, 6, kind="request")], {"cpu": 0}, {"cpu": 3}, options=Options(upscaling_mode="Conservative")),
    Case("request_resources counts total capacity, whatever the usage", [CPU2],
         [head(), node("a", "cpu", {"CPU": 2}, {"CPU": 0})], [Demand({"CPU": 2}, 1, kind="request")], {"cpu": 1},
         {"cpu": 1}),
    Case("a node a resource request needs is not drained when idle", [CPU2],
         [head(), node("a", "cpu", {"CPU": 2}, idle_s=500)], [Demand({"CPU": 2}, 1, kind="request")], {"cpu": 1},
         {"cpu": 1}),
    Case("tasks fill the nodes launched for a request before launching more", [CPU2], [head()],
         [Demand({"CPU": 2}, 1, kind="request"), tasks(2)], {"cpu": 0}, {"cpu": 1}),
    Case("actor and placement-group demand count like tasks", [CPU2], [head()],
         [Demand({"CPU": 2}, 1, kind="actor"), Demand({"CPU": 1}, 2, kind="placement_group")], {"cpu": 0},
         {"cpu": 2}),
    Case("memory is packed too", [CPU2], [head()], [Demand({"CPU": 0.5, "memory": 3e9}, 2)], {"cpu": 0}, {"cpu": 2}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_policy_decides_exactly(case: Case) -> None:
    got = decide(case.groups, case.nodes, case.demand, case.options, case.current)
    assert dict(got.replicas) == case.replicas, got.reasons
    assert got.drain == case.drain, got.reasons


def test_every_decision_explains_itself() -> None:
    got = decide([CPU2], [head()], [tasks(1, CPU=16)], Options(), {"cpu": 0})
    assert got == Decision({"cpu": 0}, (), ("pending 1 x {CPU: 16} is infeasible: no worker group's shape fits it",))
    up = decide([CPU2], [head()], [tasks(3)], Options(), {"cpu": 0})
    assert up.reasons == ("launch 1 cpu node for pending 2 x {CPU: 1}", "launch 1 cpu node for pending 1 x {CPU: 1}")
    down = decide([CPU2], [head(), node("abc", "cpu", {"CPU": 2}, idle_s=61)], [], Options(), {"cpu": 1})
    assert down.reasons == ("drain abc (cpu, idle 61 s >= idle timeout 60 s)",)


def test_an_unknown_upscaling_mode_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="Conservative, Default, Aggressive"):
        decide([CPU2], [head()], [], Options(upscaling_mode="Fast"), {})


def test_the_state_api_payload_parses_into_nodes_and_demand() -> None:
    payload = {
        "timestamp": 1.0,
        "nodes": [
            {"node_id": "h", "state": "ALIVE", "is_head_node": True, "labels": {"spindle.dev/group": "head"},
             "resources_total": {"CPU": 1}, "resources_available": {"CPU": 1}, "idle_s": 3.5, "busy_reasons": []},
            {"node_id": "w", "state": "DRAINING", "is_head_node": False,
             "labels": {"spindle.dev/group": "cpu", "spindle.dev/pod-name": "c-cpu-x1"},
             "resources_total": {"CPU": 2}, "resources_available": {"CPU": 0}, "idle_s": None,
             "busy_reasons": ["1 running task (leased workers)"]},
        ],
        "pending_demand": [{"shape": {"CPU": 1.0}, "count": 3, "kind": "task", "infeasible": False},
                           {"shape": {"CPU": 2.0}, "count": 1, "kind": "request", "infeasible": True}],
        "requested_resources": [{"CPU": 2.0}],
    }
    nodes, demand = state_from_json(payload)
    assert nodes == [
        NodeView("h", "head", None, "ALIVE", {"CPU": 1.0}, {"CPU": 1.0}, 3.5, True),
        NodeView("w", "cpu", "c-cpu-x1", "DRAINING", {"CPU": 2.0}, {"CPU": 0.0}, None, False),
    ]
    assert demand == [Demand({"CPU": 1.0}, 3, "task", False), Demand({"CPU": 2.0}, 1, "request", True)]
