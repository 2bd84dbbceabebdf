"""Checking call arguments against the function's signature at ``.remote()``, as Ray does.

A wrong call to a remote function or actor method fails in the caller with the TypeError Python
would raise, instead of as a task error later. Signatures travel with actor handles (to other
processes, through the head for named actors), so they are kept as plain tuples that always
pickle: (name, kind, has_default) per parameter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

ParamSpec = tuple[str, int, bool]
_NO_DEFAULT = inspect.Parameter.empty


def params_of(fn: Callable[..., Any], drop_first: bool = False) -> tuple[ParamSpec, ...] | None:
    """The parameters of ``fn`` (``drop_first``: a method's ``self``); None when it has no usable signature."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if drop_first and params and params[0].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                     inspect.Parameter.POSITIONAL_OR_KEYWORD):
        params = params[1:]
    return tuple((p.name, int(p.kind), p.default is not _NO_DEFAULT) for p in params)


def method_params(cls: type, name: str) -> tuple[ParamSpec, ...] | None:
    """An actor method's parameters without ``self`` (static methods keep all of theirs)."""
    raw = inspect.getattr_static(cls, name, None)
    fn = getattr(cls, name, None)
    if fn is None:
        return None
    if isinstance(raw, staticmethod):
        return params_of(fn)
    if isinstance(raw, classmethod):
        return params_of(fn)  # bound to the class already
    return params_of(fn, drop_first=True)


def _signature(params: tuple[ParamSpec, ...]) -> inspect.Signature:
    return inspect.Signature([
        inspect.Parameter(name, inspect._ParameterKind(kind), default=None if has_default else _NO_DEFAULT)
        for name, kind, has_default in params])


def check(params: tuple[ParamSpec, ...] | None, args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> None:
    """Raise TypeError (Python's message, naming ``what``) if ``args``/``kwargs`` don't fit ``params``."""
    if params is None:
        return
    try:
        _signature(params).bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{e} (in the call {what}.remote(...))") from None
