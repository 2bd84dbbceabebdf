"""``f.bind(...)``: a task in a DAG; executing it submits the task and gives its ObjectRef(s)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spindle.dag.dag_node import DAGNode, _Resolved

if TYPE_CHECKING:
    from spindle.remote_function import RemoteFunction


class FunctionNode(DAGNode):
    def __init__(self, remote_function: RemoteFunction, args: tuple[Any, ...], kwargs: dict[str, Any],
                 options: dict[str, Any]):
        super().__init__(args, kwargs, options)
        self._remote_function = remote_function

    def options(self, **options: Any) -> FunctionNode:
        """The same call with more task options (``f.bind(x).options(num_cpus=2)``)."""
        return FunctionNode(self._remote_function, self._bound_args, self._bound_kwargs,
                            {**self._bound_options, **options})

    def _execute_impl(self, resolved: _Resolved, inputs: Any) -> Any:
        fn = self._remote_function.options(**self._bound_options) if self._bound_options else self._remote_function
        return fn.remote(*resolved.args, **resolved.kwargs)

    def __repr__(self) -> str:
        return f"FunctionNode({self._remote_function._name})"
