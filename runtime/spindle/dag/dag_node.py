"""The base of Ray Core's lazy DAG API: a node records a call (``f.bind(...)``) instead of making it.

``dag.execute(*args)`` walks the graph once: every node runs at most once per ``execute`` (a node
bound into two places is shared, as in Ray), upstream results are passed downstream as ObjectRefs
(so tasks start as soon as their inputs exist and values never pass through the driver), and the
``InputNode`` stands for the arguments given to ``execute``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any


class DAGNode:
    """One lazily recorded call. Subclasses say what executing it means (`_execute_impl`)."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any],
                 other_args_to_resolve: dict[str, Any] | None = None):
        self._bound_args = tuple(args)
        self._bound_kwargs = dict(kwargs)
        self._bound_options = dict(options)
        self._bound_other_args_to_resolve = dict(other_args_to_resolve or {})
        self._stable_uuid = uuid.uuid4().hex

    # --- Ray's accessors -------------------------------------------------------------------------
    def get_args(self) -> tuple[Any, ...]:
        return self._bound_args

    def get_kwargs(self) -> dict[str, Any]:
        return self._bound_kwargs

    def get_options(self) -> dict[str, Any]:
        return self._bound_options

    def get_other_args_to_resolve(self) -> dict[str, Any]:
        return self._bound_other_args_to_resolve

    def get_stable_uuid(self) -> str:
        return self._stable_uuid

    def _children_in(self) -> list[Any]:
        return [*self._bound_args, *self._bound_kwargs.values(), *self._bound_other_args_to_resolve.values()]

    def _get_toplevel_child_nodes(self) -> list[DAGNode]:
        """The DAG nodes this node's arguments refer to directly (also inside lists, tuples and dicts)."""
        seen: dict[str, DAGNode] = {}
        for node in _nodes_in(self._children_in()):
            seen.setdefault(node._stable_uuid, node)
        return list(seen.values())

    def apply_recursive(self, fn: Callable[[DAGNode], Any]) -> Any:
        """``fn`` applied to every node bottom-up, each node once; returns ``fn(self)``."""
        return _Walk(fn).visit(self)

    # --- execution -------------------------------------------------------------------------------
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the DAG: ObjectRef(s) for task and method nodes, an ActorHandle for a class node."""
        from spindle.dag.input_node import DAGInputData

        inputs = DAGInputData(args, kwargs)
        return _Walk(lambda node, resolved: node._execute_impl(resolved, inputs), pass_resolved=True).visit(self)

    def _execute_impl(self, resolved: _Resolved, inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} cannot be executed")

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be passed to a task or actor: call dag.execute(...) "
                        "and pass the ObjectRef it returns instead")


class _Resolved:
    """A node's bound arguments with every DAG node replaced by its result in this execution."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any], other: dict[str, Any]):
        self.args = args
        self.kwargs = kwargs
        self.other = other


class _Walk:
    """Bottom-up evaluation with a per-walk cache keyed by node identity (each node runs once)."""

    def __init__(self, fn: Callable[..., Any], pass_resolved: bool = False):
        self._fn = fn
        self._pass_resolved = pass_resolved
        self._cache: dict[str, Any] = {}
        self._active: set[str] = set()

    def visit(self, node: DAGNode) -> Any:
        key = node._stable_uuid
        if key in self._cache:
            return self._cache[key]
        if key in self._active:
            raise ValueError(f"the DAG has a cycle through {node!r}")
        self._active.add(key)
        try:
            resolved = _Resolved(
                tuple(self._replace(a) for a in node._bound_args),
                {k: self._replace(v) for k, v in node._bound_kwargs.items()},
                {k: self._replace(v) for k, v in node._bound_other_args_to_resolve.items()})
            result = self._fn(node, resolved) if self._pass_resolved else self._fn(node)
        finally:
            self._active.discard(key)
        self._cache[key] = result
        return result

    def _replace(self, value: Any) -> Any:
        if isinstance(value, DAGNode):
            return self.visit(value)
        if type(value) in (list, tuple):
            return type(value)(self._replace(v) for v in value)
        if type(value) is dict:
            return {k: self._replace(v) for k, v in value.items()}
        return value


def _nodes_in(values: list[Any]) -> Iterator[DAGNode]:
    for value in values:
        if isinstance(value, DAGNode):
            yield value
        elif type(value) in (list, tuple):
            yield from _nodes_in(list(value))
        elif type(value) is dict:
            yield from _nodes_in(list(value.values()))
