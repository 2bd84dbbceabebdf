"""``inspect_serializability``: which captured object makes a function or value unpicklable.

Ray users get, when a remote function closes over a lock or a socket, an error naming the culprit
instead of cloudpickle's bare "cannot pickle '_thread.lock' object". This walks a function's
closure cells and referenced globals, and an object's attributes, a few levels deep, and reports
the innermost members that fail to pickle (as Ray's ``ray.util.inspect_serializability`` does).
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import cloudpickle


class FailureTuple(NamedTuple):
    obj: Any
    name: str
    parent: Any

    def __repr__(self) -> str:
        return f"FailTuple({self.name} [obj={self.obj!r}, parent={self.parent!r}])"

    def __hash__(self) -> int:  # the objects themselves may be unhashable
        return hash((id(self.obj), self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FailureTuple) and other.obj is self.obj and other.name == self.name


def _pickles(obj: Any) -> tuple[bool, str]:
    try:
        cloudpickle.dumps(obj)
        return True, ""
    except Exception as e:  # noqa: BLE001 - any reason counts
        return False, f"{type(e).__name__}: {e}"


def _members(obj: Any) -> list[tuple[str, Any]]:
    if inspect.isfunction(obj):
        try:
            cv = inspect.getclosurevars(obj)
        except (TypeError, ValueError):
            return []
        return list(cv.nonlocals.items()) + list(cv.globals.items())
    if inspect.ismethod(obj):
        return [("__self__", obj.__self__), ("__func__", obj.__func__)]
    if isinstance(obj, dict):
        return [(str(k), v) for k, v in obj.items()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"[{i}]", v) for i, v in enumerate(obj)]
    if inspect.isclass(obj):
        return [(k, v) for k, v in vars(obj).items() if not k.startswith("__")]
    d = getattr(obj, "__dict__", None)
    return list(d.items()) if isinstance(d, dict) else []


def _walk(obj: Any, name: str, depth: int, failures: set[FailureTuple], seen: set[int], parent: Any = None) -> bool:
    """True if ``obj`` pickles; otherwise record its innermost failing members (or itself)."""
    if id(obj) in seen:
        return True
    seen.add(id(obj))
    ok, _ = _pickles(obj)
    if ok:
        return True
    found = False
    if depth > 0:
        for member_name, member in _members(obj):
            if not _walk(member, member_name, depth - 1, failures, seen, obj):
                found = True
    if not found:
        failures.add(FailureTuple(obj, name, parent))
    return False


def inspect_serializability(base_obj: Any, name: str | None = None, depth: int = 3,
                            print_file: Any = None) -> tuple[bool, set[FailureTuple]]:
    """Ray's API: (serializable?, the innermost members that are not)."""
    failures: set[FailureTuple] = set()
    ok = _walk(base_obj, name or getattr(base_obj, "__qualname__", None) or repr(base_obj)[:60], depth, failures,
               set())
    if print_file is not None:
        print(describe(base_obj, name) if not ok else f"{name or base_obj!r} is serializable", file=print_file)
    return ok, failures


def describe(base_obj: Any, name: str | None = None, depth: int = 3) -> str:
    """One sentence naming what could not be pickled, for error messages ('' if it all pickles)."""
    ok, failures = inspect_serializability(base_obj, name, depth)
    if ok:
        return ""
    parts = []
    for f in sorted(failures, key=lambda f: f.name):
        _, why = _pickles(f.obj)
        parts.append(f"{f.name!r} (a {type(f.obj).__module__}.{type(f.obj).__qualname__}: {why})")
    return "it cannot pickle " + ", ".join(parts)
