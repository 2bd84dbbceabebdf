"""``InputNode``: the placeholder for the arguments of ``dag.execute(...)``.

As in Ray: with exactly one positional argument and no keywords, the input node *is* that value;
``inp[i]`` is the i-th positional argument, ``inp["k"]`` / ``inp.k`` the keyword ``k`` (or an item or
attribute of the single argument).
"""

from __future__ import annotations

from typing import Any

from spindle.dag.dag_node import DAGNode, _Resolved


class DAGInputData:
    """What ``execute`` was called with."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.args = args
        self.kwargs = kwargs

    def value(self) -> Any:
        if len(self.args) == 1 and not self.kwargs:
            return self.args[0]
        return self

    def __getitem__(self, key: int | str) -> Any:
        given = f"it was called with {len(self.args)} positional argument(s) and keywords {sorted(self.kwargs)}"
        if isinstance(key, int):
            if not -len(self.args) <= key < len(self.args):
                raise IndexError(f"dag.execute() got no positional input {key}: {given}")
            return self.args[key]
        if key not in self.kwargs:
            raise KeyError(f"dag.execute() got no keyword input {key!r}: {given}")
        return self.kwargs[key]


class InputNode(DAGNode):
    """``with InputNode() as inp: dag = f.bind(inp)``."""

    def __init__(self) -> None:
        super().__init__((), {}, {})

    def __enter__(self) -> InputNode:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getitem__(self, key: int | str) -> InputAttributeNode:
        if not isinstance(key, (int, str)):
            raise TypeError(f"InputNode keys are ints (positional) or strings (keywords), got {key!r}")
        return InputAttributeNode(self, key, "__getitem__")

    def __getattr__(self, name: str) -> InputAttributeNode:
        if name.startswith("_"):
            raise AttributeError(name)
        return InputAttributeNode(self, name, "__getattr__")

    def _execute_impl(self, resolved: _Resolved, inputs: Any) -> Any:
        return inputs.value()

    def __repr__(self) -> str:
        return "InputNode()"


class InputAttributeNode(DAGNode):
    """One positional/keyword input, or an item/attribute of the single input."""

    def __init__(self, parent: InputNode, key: int | str, accessor: str):
        super().__init__((), {}, {}, {"parent": parent})
        self._key = key
        self._accessor = accessor

    def _execute_impl(self, resolved: _Resolved, inputs: Any) -> Any:
        value = resolved.other["parent"]
        if isinstance(value, DAGInputData):
            return value[self._key]
        if self._accessor == "__getattr__":
            return getattr(value, str(self._key))
        return value[self._key]

    @property
    def key(self) -> int | str:
        return self._key

    def __repr__(self) -> str:
        return f"InputAttributeNode({self._key!r})"
