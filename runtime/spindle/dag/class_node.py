"""``Actor.bind(...)`` and ``actor_node.method.bind(...)``: actors and their method calls in a DAG.

Executing a ClassNode creates the actor (once per ``execute``, shared by every method node bound
on it) and gives its handle; a ClassMethodNode calls the method on that actor. A method bound on an
existing handle (``handle.method.bind(...)``) calls that actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spindle.dag.dag_node import DAGNode, _Resolved

if TYPE_CHECKING:
    from spindle.actor import ActorClass, ActorHandle


class ClassNode(DAGNode):
    def __init__(self, actor_class: ActorClass, args: tuple[Any, ...], kwargs: dict[str, Any],
                 options: dict[str, Any]):
        super().__init__(args, kwargs, options)
        self._actor_class = actor_class

    def options(self, **options: Any) -> ClassNode:
        return ClassNode(self._actor_class, self._bound_args, self._bound_kwargs, {**self._bound_options, **options})

    def __getattr__(self, name: str) -> _UnboundClassMethodNode:
        if name.startswith("_"):
            raise AttributeError(name)
        cls = self.__dict__["_actor_class"]._cls
        if not callable(getattr(cls, name, None)):
            raise AttributeError(f"actor class {cls.__name__!r} has no method {name!r}")
        return _UnboundClassMethodNode(self, name, {})

    def _execute_impl(self, resolved: _Resolved, inputs: Any) -> Any:
        cls = self._actor_class.options(**self._bound_options) if self._bound_options else self._actor_class
        return cls.remote(*resolved.args, **resolved.kwargs)

    def __repr__(self) -> str:
        return f"ClassNode({self._actor_class.__name__})"


class _UnboundClassMethodNode:
    """``actor_node.method``: becomes a ClassMethodNode with ``.bind(...)``."""

    def __init__(self, actor: ClassNode | ActorHandle, method_name: str, options: dict[str, Any]):
        self._actor = actor
        self._method_name = method_name
        self._options = options

    def options(self, **options: Any) -> _UnboundClassMethodNode:
        return _UnboundClassMethodNode(self._actor, self._method_name, {**self._options, **options})

    def bind(self, *args: Any, **kwargs: Any) -> ClassMethodNode:
        return ClassMethodNode(self._actor, self._method_name, args, kwargs, self._options)


class ClassMethodNode(DAGNode):
    def __init__(self, actor: ClassNode | ActorHandle, method_name: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any], options: dict[str, Any]):
        super().__init__(args, kwargs, options, {"parent_class_node": actor})
        self._method_name = method_name

    def options(self, **options: Any) -> ClassMethodNode:
        return ClassMethodNode(self._bound_other_args_to_resolve["parent_class_node"], self._method_name,
                               self._bound_args, self._bound_kwargs, {**self._bound_options, **options})

    def _execute_impl(self, resolved: _Resolved, inputs: Any) -> Any:
        handle = resolved.other["parent_class_node"]
        method = getattr(handle, self._method_name)
        if self._bound_options:
            method = method.options(**self._bound_options)
        return method.remote(*resolved.args, **resolved.kwargs)

    def __repr__(self) -> str:
        return f"ClassMethodNode({self._method_name})"
