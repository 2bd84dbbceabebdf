"""Ray Core's DAG API: graphs built with .bind() run on a real embedded cluster with dag.execute()."""

from __future__ import annotations

import os

import pytest

import spindle
from spindle.dag import InputNode, MultiOutputNode

pytestmark = pytest.mark.usefixtures("cluster")


@spindle.remote
def add(a: int, b: int) -> int:
    return a + b


@spindle.remote
def double(x: int) -> int:
    return 2 * x


@spindle.remote
def pid_of(_: object) -> int:
    return os.getpid()


@spindle.remote
class Counter:
    def __init__(self, start: int):
        self.value = start

    def inc(self, by: int) -> int:
        self.value += by
        return self.value

    def get(self) -> int:
        return self.value


def test_a_function_dag_runs_only_when_executed_and_feeds_results_downstream() -> None:
    with InputNode() as inp:
        dag = add.bind(double.bind(inp), double.bind(10))
    assert spindle.get(dag.execute(1)) == 22
    assert spindle.get(dag.execute(5)) == 30


def test_inputs_are_picked_by_position_and_keyword() -> None:
    with InputNode() as inp:
        dag = add.bind(inp[0], inp.y)
    assert spindle.get(dag.execute(3, y=4)) == 7
    with InputNode() as inp:
        by_key = add.bind(inp["a"], inp["b"])
    assert spindle.get(by_key.execute(a=1, b=2)) == 3


def test_an_item_of_a_single_input_value_is_taken_from_that_value() -> None:
    with InputNode() as inp:
        dag = add.bind(inp["x"], inp["y"])
    assert spindle.get(dag.execute({"x": 1, "y": 41})) == 42


def test_a_node_bound_into_two_places_runs_once_per_execution() -> None:
    shared = pid_of.bind(0)
    dag = MultiOutputNode([add.bind(shared, 0), add.bind(shared, 0)])
    a, b = spindle.get(dag.execute())
    assert a == b


def test_multi_output_gives_a_list_of_refs() -> None:
    with InputNode() as inp:
        dag = MultiOutputNode([double.bind(inp), add.bind(inp, 1)])
    refs = dag.execute(4)
    assert isinstance(refs, list) and all(isinstance(r, spindle.ObjectRef) for r in refs)
    assert spindle.get(refs) == [8, 5]


def test_actor_dags_create_the_actor_once_and_call_its_methods_in_order() -> None:
    with InputNode() as inp:
        counter = Counter.bind(100)
        first = counter.inc.bind(inp)
        dag = MultiOutputNode([first, counter.inc.bind(first)])
    assert spindle.get(dag.execute(1)) == [101, 202]
    # a fresh actor per execution, as in Ray
    assert spindle.get(dag.execute(1)) == [101, 202]


def test_executing_a_class_node_gives_a_live_actor_handle() -> None:
    handle = Counter.bind(7).execute()
    assert spindle.get(handle.get.remote()) == 7


def test_methods_bound_on_an_existing_handle_call_that_actor() -> None:
    counter = Counter.remote(0)
    with InputNode() as inp:
        dag = counter.inc.bind(inp)
    assert spindle.get(dag.execute(2)) == 2
    assert spindle.get(dag.execute(3)) == 5


def test_options_apply_to_bound_nodes() -> None:
    dag = add.options(num_returns=1, resources={"special": 1}).bind(1, 2)
    assert spindle.get(dag.execute()) == 3
    assert spindle.get(double.bind(4).options(num_cpus=1).execute()) == 8


def test_nodes_nested_in_lists_and_dicts_arrive_as_refs_as_in_ray() -> None:
    @spindle.remote
    def total(values: list[spindle.ObjectRef], extra: dict[str, spindle.ObjectRef]) -> int:
        return sum(spindle.get(values)) + sum(spindle.get(list(extra.values())))

    dag = total.bind([double.bind(1), double.bind(2)], {"k": double.bind(3)})
    assert spindle.get(dag.execute()) == 12


def test_accessors_describe_the_graph() -> None:
    with InputNode() as inp:
        left = double.bind(inp)
        dag = add.bind(left, 1)
    assert dag.get_args() == (left, 1)
    assert dag._get_toplevel_child_nodes() == [left]
    seen: list[str] = []
    dag.apply_recursive(lambda node: seen.append(type(node).__name__))
    assert seen == ["InputNode", "FunctionNode", "FunctionNode"]


def test_a_dag_node_cannot_be_passed_to_remote_and_the_error_says_what_to_do() -> None:
    node = double.bind(1)
    with pytest.raises(TypeError, match="dag.execute"):
        spindle.get(add.remote(node, 1))


def test_a_missing_input_names_what_was_given() -> None:
    with InputNode() as inp:
        dag = add.bind(inp[0], inp[1])
    with pytest.raises(IndexError, match="1 positional"):
        dag.execute(1, z=2)


def test_multi_output_rejects_a_single_node() -> None:
    with pytest.raises(TypeError, match="list of DAG nodes"):
        MultiOutputNode(double.bind(1))  # type: ignore[arg-type]
