"""``MultiOutputNode([a, b])``: a DAG with several outputs; ``execute`` gives a list of their refs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spindle.dag.dag_node import DAGNode, _Resolved


class MultiOutputNode(DAGNode):
    def __init__(self, nodes: Sequence[DAGNode]):
        if isinstance(nodes, DAGNode) or not isinstance(nodes, (list, tuple)):
            raise TypeError("MultiOutputNode takes a list of DAG nodes: MultiOutputNode([a, b])")
        super().__init__(tuple(nodes), {}, {})

    def _execute_impl(self, resolved: _Resolved, inputs: Any) -> Any:
        return list(resolved.args)

    def __repr__(self) -> str:
        return f"MultiOutputNode({len(self._bound_args)})"
