"""Ray's state API query semantics: filters, limit, detail columns and the response envelope.

Ray's client sends ``filter_keys``/``filter_predicates``/``filter_values`` as repeated query parameters
(``=`` or ``!=``, values compared as text; booleans as true/false, case-insensitive), ``limit`` (default
100) and ``detail``. Pure functions, unit-tested with exact expectations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_LIMIT = 100
MAX_LIMIT = 100_000

# the columns a non-detail listing returns (Ray's non-detail columns plus Spindle's extras)
BRIEF: dict[str, tuple[str, ...]] = {
    "tasks": ("task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type", "func_or_class_name",
              "node_id", "worker_id", "worker_pid", "error_type", "start_time_ms", "end_time_ms"),
    "actors": ("actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace", "namespace",
               "num_restarts"),
    "workers": ("worker_id", "is_alive", "worker_type", "node_id", "ip", "pid", "current_task_id",
                "current_task_name", "actor_id"),
    "objects": ("object_id", "object_size", "task_status", "reference_type", "node_id", "ip", "pid", "call_site"),
    "placement_groups": ("placement_group_id", "name", "creator_job_id", "state"),
}


class QueryError(ValueError):
    """Bad query parameters: answered with 400 and this message."""


@dataclass(frozen=True)
class Query:
    filters: tuple[tuple[str, str, str], ...] = ()
    limit: int = DEFAULT_LIMIT
    detail: bool = False


def _bool(text: str, name: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no", ""):
        return False
    raise QueryError(f"{name}={text!r} is not a boolean (use true or false)")


def parse(params: Mapping[str, str] | Any) -> Query:
    """Parse aiohttp's MultiDict (or a plain mapping) of query parameters."""
    getall = params.getall if hasattr(params, "getall") else (lambda k, d=(): [params[k]] if k in params else list(d))
    keys, preds, values = getall("filter_keys", []), getall("filter_predicates", []), getall("filter_values", [])
    if not (len(keys) == len(preds) == len(values)):
        raise QueryError("filter_keys, filter_predicates and filter_values must come in equal numbers "
                         f"(got {len(keys)}, {len(preds)}, {len(values)})")
    for p in preds:
        if p not in ("=", "!="):
            raise QueryError(f"unsupported filter predicate {p!r}: use '=' or '!='")
    raw_limit = params.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise QueryError(f"limit={raw_limit!r} is not an integer") from None
    if limit < 1 or limit > MAX_LIMIT:
        raise QueryError(f"limit={limit} must be between 1 and {MAX_LIMIT}")
    return Query(tuple(zip(keys, preds, values, strict=True)), limit, _bool(params.get("detail", "false"), "detail"))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matches(row: Mapping[str, Any], filters: Sequence[tuple[str, str, str]]) -> bool:
    for key, pred, want in filters:
        got = _text(row.get(key))
        equal = got == want or (isinstance(row.get(key), bool) and got == want.strip().lower())
        if (pred == "=") != equal:
            return False
    return True


def apply(kind: str, rows: Sequence[Mapping[str, Any]], q: Query, columns: Sequence[str] | None = None,
          warning: str = "") -> dict[str, Any]:
    """Filter, truncate and trim ``rows``; return Ray's envelope. Unknown filter columns are refused."""
    known = set(columns) if columns is not None else (set(rows[0]) if rows else set())
    for key, _, _ in q.filters:
        if known and key not in known:
            raise QueryError(f"cannot filter {kind} by {key!r}: the columns are {', '.join(sorted(known))}")
    filtered = [r for r in rows if matches(r, q.filters)]
    kept = filtered[: q.limit]
    brief = BRIEF.get(kind)
    if brief is not None and not q.detail:
        kept = [{k: r.get(k) for k in brief if k in r} for r in kept]
    else:
        kept = [dict(r) for r in kept]
    return envelope({"total": len(rows), "num_after_truncation": len(kept), "num_filtered": len(filtered),
                     "result": kept, "partial_failure_warning": warning, "warnings": None})


def envelope(result: Any, msg: str = "") -> dict[str, Any]:
    return {"result": True, "msg": msg, "data": {"result": result}}
