"""Choosing nodes by their labels: Ray's ``label_selector`` option and ``NodeLabelSchedulingStrategy``.

Pure (no I/O). A selector is a list of expressions ``(key, op, values)`` with op ``in``, ``not_in``,
``exists`` or ``not_exists``; ``label_selector={"zone": "us-1", "tier": "!spot", "gpu": "in(a100,h100)"}``
parses into them as in Ray (a value ``v`` means in(v), ``!`` negates), and the strategy's ``In``,
``NotIn``, ``Exists``, ``DoesNotExist`` map onto them. ``not_in`` and ``not_exists`` match a node
without the key (Kubernetes' rule, which Ray follows). Expressions travel as JSON in the wire
strategy (``labels_hard``: every candidate node must match; ``labels_soft``: preferred when possible).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

Expr = tuple[str, str, tuple[str, ...]]

_NAME = r"([a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?)"
_PREFIX = re.compile(rf"^({_NAME}?(\.{_NAME}?)*)$")
_SELECTOR_VALUE = re.compile(rf"^!?(?:in)?\({_NAME}(?:, ?{_NAME})*\)$|^!?{_NAME}$")


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        raise ValueError(f"Label keys must be str, got {key!r} of type {type(key).__name__}.")
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
        raise ValueError(f"Invalid label key prefix `{prefix}`. Prefix must be a series of DNS labels separated by "
                         "dots (.), not longer than 253 characters in total.")
    if len(name) > 63 or not re.fullmatch(_NAME, name):
        raise ValueError(f"Invalid label key name `{name}`. Name must be 63 chars or less beginning and ending with "
                         "an alphanumeric character ([a-z0-9A-Z]) with dashes (-), underscores (_), dots (.), and "
                         "alphanumerics between.")


def parse_selector(selector: Any) -> list[Expr]:
    """Ray's ``label_selector`` dict -> expressions; a ValueError names what is wrong."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        raise ValueError(f"label_selector must be a dict of label key to selector value, got {selector!r}")
    out: list[Expr] = []
    for key, value in selector.items():
        _check_key(key)
        if not isinstance(value, str) or not _SELECTOR_VALUE.fullmatch(value):
            raise ValueError(f"Invalid label selector value `{value}` for `{key}`. The label selector value should "
                             "contain optional operators and a label value. Supported operators are: ! and in, e.g. "
                             "'us-1', '!spot', 'in(a,b)', '!in(a,b)'.")
        negated = value.startswith("!")
        body = value[1:] if negated else value
        if body.startswith("in("):
            body = body[2:]
        values = tuple(v.strip() for v in body.strip("()").split(",")) if body.startswith("(") else (body,)
        out.append((key, "not_in" if negated else "in", values))
    return out


def from_strategy_map(expressions: Any, param: str) -> list[Expr]:
    """``NodeLabelSchedulingStrategy(hard={...}, soft={...})``'s map -> expressions."""
    if expressions is None:
        return []
    if not isinstance(expressions, dict):
        raise ValueError(f'The {param} parameter must be a map (e.g. {{"key1": In("value1")}}) but got type '
                         f"{type(expressions)}.")
    out: list[Expr] = []
    for key, op in expressions.items():
        if not isinstance(key, str):
            raise ValueError(f'The map key of the {param} parameter must be of type str (e.g. {{"key1": In("value1")}}) '
                             f"but got {key!r} of type {type(key)}.")
        kind = getattr(op, "_label_op", None)
        if kind is None:
            raise ValueError(f"The value of the {param} parameter's key {key!r} must be In(...), NotIn(...), Exists() "
                             f"or DoesNotExist(), got {op!r}.")
        out.append((key, kind, tuple(getattr(op, "values", ()))))
    return out


def matches(labels: Mapping[str, str], exprs: Iterable[Expr]) -> bool:
    for key, op, values in exprs:
        has = key in labels
        if op == "in" and not (has and labels[key] in values):
            return False
        if op == "not_in" and has and labels[key] in values:
            return False
        if op == "exists" and not has:
            return False
        if op == "not_exists" and has:
            return False
    return True


def describe(exprs: Iterable[Expr]) -> str:
    parts = []
    for key, op, values in exprs:
        if op in ("exists", "not_exists"):
            parts.append(f"{key} {op.replace('_', ' ')}")
        else:
            parts.append(f"{key} {op.replace('_', ' ')} ({', '.join(values)})")
    return ", ".join(parts)


def dumps(exprs: list[Expr]) -> str:
    return json.dumps([[k, op, list(v)] for k, op, v in exprs]) if exprs else ""


def loads(text: str) -> tuple[Expr, ...]:
    if not text:
        return ()
    return tuple((str(k), str(op), tuple(str(x) for x in v)) for k, op, v in json.loads(text))
