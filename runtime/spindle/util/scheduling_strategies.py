"""Scheduling strategies, named as in ``ray.util.scheduling_strategies``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id``; with ``soft=True`` fall back to any node when it cannot."""

    node_id: str
    soft: bool = False


@dataclass(frozen=True)
class PlacementGroupSchedulingStrategy:
    """Run in a bundle of ``placement_group`` (index -1: any of its bundles), using the bundle's resources.

    With ``placement_group_capture_child_tasks=True`` the tasks and actors this one submits go into the same
    group unless they say otherwise.
    """

    placement_group: Any
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = None


def _check_values(values: tuple[Any, ...], operator: str) -> None:
    if not values:
        raise ValueError(f"The variadic parameter of the {operator} operator must be a non-empty tuple: e.g. "
                         f'{operator}("value1", "value2").')
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"Type of value in position {i} for the {operator} operator must be str (e.g. "
                             f'{operator}("value1", "value2")) but got {value!r} of type {type(value)}.')


class In:
    """The node's label has one of ``values``."""

    _label_op = "in"

    def __init__(self, *values: str):
        _check_values(values, "In")
        self.values = list(values)


class NotIn:
    """The node has no such label, or its value is none of ``values``."""

    _label_op = "not_in"

    def __init__(self, *values: str):
        _check_values(values, "NotIn")
        self.values = list(values)


class Exists:
    """The node has the label (any value)."""

    _label_op = "exists"


class DoesNotExist:
    """The node does not have the label."""

    _label_op = "not_exists"


class NodeLabelSchedulingStrategy:
    """Run on a node whose labels (``spindle start --labels``) match every ``hard`` expression, preferring
    nodes that also match the ``soft`` ones: ``NodeLabelSchedulingStrategy({"zone": In("us-1")},
    soft={"disk": Exists()})``. No matching node: the work waits (infeasible, with a warning) as in Ray."""

    def __init__(self, hard: dict[str, Any], *, soft: dict[str, Any] | None = None):
        from spindle import _labels

        self.hard = hard
        self.soft = soft
        if not (_labels.from_strategy_map(hard, "hard") or _labels.from_strategy_map(soft, "soft")):
            raise ValueError("The `hard` and `soft` parameter of NodeLabelSchedulingStrategy cannot both be empty.")


__all__ = ["DoesNotExist", "Exists", "In", "NodeAffinitySchedulingStrategy", "NodeLabelSchedulingStrategy", "NotIn",
           "PlacementGroupSchedulingStrategy"]
