"""`spindle list|get|summary|logs`: Ray's state CLI (`ray list tasks`, `ray summary tasks`, `ray logs`).

Thin commands over spindle.util.state: filters are `--filter KEY=VALUE` or `--filter KEY!=VALUE`
(repeatable), output a table (default) or JSON (`--format json`). The address resolves like the job
commands (`--address`, else SPINDLE_DASHBOARD_ADDRESS, else the cluster started on this machine).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

RESOURCES = ("tasks", "actors", "nodes", "workers", "objects", "jobs")
GET_KEYS = {"tasks": "task_id", "actors": "actor_id", "nodes": "node_id", "workers": "worker_id",
            "objects": "object_id", "jobs": "job_id"}
MAX_CELL = 48


def parse_filter(text: str) -> tuple[str, str, str]:
    for pred in ("!=", "="):
        key, sep, value = text.partition(pred)
        if sep and key.strip():
            return key.strip(), pred, value.strip()
    raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE or KEY!=VALUE (e.g. --filter state=RUNNING)")


def _cell(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else ("" if value is None else str(value))
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(none)"
    columns: list[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _fail(e: Exception) -> int:
    print(f"spindle: {e}", file=sys.stderr)
    return 1


def cmd_list(args: argparse.Namespace) -> int:
    from spindle.util.state.api import StateApiClient

    try:
        rows = StateApiClient(args.address).list_rows(args.resource, args.filter, args.limit, args.timeout, args.detail)
    except (RuntimeError, ConnectionError, TimeoutError, ValueError) as e:
        return _fail(e)
    print(json.dumps(rows, indent=2) if args.format == "json" else table(rows))
    if len(rows) == args.limit:
        print(f"(showing the first {args.limit}: pass --limit for more)", file=sys.stderr)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from spindle.util.state.api import StateApiClient

    try:
        rows = StateApiClient(args.address).list_rows(args.resource, [(GET_KEYS[args.resource], "=", args.id)], 1,
                                                 args.timeout, True)
    except (RuntimeError, ConnectionError, TimeoutError, ValueError) as e:
        return _fail(e)
    if not rows:
        print(f"spindle: no {args.resource[:-1]} {args.id!r} (`spindle list {args.resource}` shows them)",
              file=sys.stderr)
        return 1
    print(json.dumps(rows[0], indent=2))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from spindle.util.state.api import StateApiClient

    try:
        result = StateApiClient(args.address).summary(args.resource, args.timeout)
    except (RuntimeError, ConnectionError, TimeoutError) as e:
        return _fail(e)
    summary = result["node_id_to_summary"]["cluster"]["summary"]
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    name_key = "func_or_class_name" if args.resource == "tasks" else "class_name"
    rows = [{name_key: name, **({"type": s["type"]} if "type" in s else {}),
             "state_counts": " ".join(f"{k}:{v}" for k, v in sorted(s["state_counts"].items()))}
            for name, s in sorted(summary.items())]
    print(table(rows))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from spindle.util.state import api

    try:
        if not (args.filename or args.task_id or args.actor_id or args.pid):
            if not (args.node_id or args.node_ip):
                print("spindle logs: give a FILENAME (with --node-id), --task-id, --actor-id or --pid; or --node-id "
                      "alone to list that node's files (`spindle list nodes` shows node ids)", file=sys.stderr)
                return 2
            listing = api.list_logs(args.address, args.node_id, args.node_ip, args.glob, args.timeout)
            for category, names in sorted(listing.items()):
                print(f"{category}:")
                for name in names:
                    print(f"  {name}")
            return 0
        for text in api.get_log(args.address, node_id=args.node_id, node_ip=args.node_ip, filename=args.filename,
                                actor_id=args.actor_id, task_id=args.task_id, pid=args.pid, follow=args.follow,
                                tail=args.tail, timeout=args.timeout, suffix="err" if args.err else "out",
                                errors="replace"):
            sys.stdout.write(text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, ConnectionError, TimeoutError, ValueError) as e:
        return _fail(e)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, help="the head's dashboard address http://HOST:8265 (default: "
                   "SPINDLE_DASHBOARD_ADDRESS, else the cluster started on this machine)")
    p.add_argument("--timeout", type=float, default=30, help="seconds to wait for the head (default 30)")


def add_state_parsers(sub: Any) -> None:
    ls = sub.add_parser("list", help="list tasks, actors, nodes, workers, objects or jobs (Ray's `ray list`)",
                        description="List a cluster's tasks, actors, nodes, workers, objects or jobs.")
    ls.add_argument("resource", choices=RESOURCES)
    ls.add_argument("--filter", action="append", type=parse_filter, default=[], metavar="KEY=VALUE",
                    help="keep rows whose KEY is (=) or is not (!=) VALUE; repeatable, e.g. --filter state=RUNNING")
    ls.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")
    ls.add_argument("--detail", action="store_true", help="every column, not just the main ones")
    ls.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    _common(ls)
    ls.set_defaults(fn=cmd_list)
    g = sub.add_parser("get", help="show one task, actor, node, worker, object or job in detail",
                       description="Show one resource by its id, every column (JSON).")
    g.add_argument("resource", choices=RESOURCES)
    g.add_argument("id", help="its id (from `spindle list`)")
    _common(g)
    g.set_defaults(fn=cmd_get)
    sm = sub.add_parser("summary", help="count tasks by function or actors by class, per state",
                        description="Summarize tasks (by function) or actors (by class) per state.")
    sm.add_argument("resource", choices=("tasks", "actors"))
    sm.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    _common(sm)
    sm.set_defaults(fn=cmd_summary)
    lg = sub.add_parser("logs", help="print or follow a log of any node (by file, task, actor or pid)",
                        description="Print (or follow) a log file of any node: a FILENAME on --node-id, or the "
                                    "worker log of a --task-id, --actor-id or --pid. With only --node-id, list "
                                    "that node's log files.")
    lg.add_argument("filename", nargs="?", default=None, help="log file name as listed (e.g. agent.log)")
    lg.add_argument("--node-id", default=None, help="the node (`spindle list nodes`; default: the head's node)")
    lg.add_argument("--node-ip", default=None, help="the node, by IP")
    who = lg.add_mutually_exclusive_group()
    who.add_argument("--task-id", default=None, help="the log of the worker that ran this task")
    who.add_argument("--actor-id", default=None, help="the log of this actor's worker")
    who.add_argument("--pid", type=int, default=None, help="the log of the worker with this pid")
    lg.add_argument("--err", action="store_true", help="the worker's stderr (.err) instead of its stdout")
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing what is appended (Ctrl-C stops)")
    lg.add_argument("--tail", type=int, default=1000, help="start with the last N lines (default 1000; -1 = all)")
    lg.add_argument("--glob", default=None, help="with only --node-id: list the files matching this pattern")
    _common(lg)
    lg.set_defaults(fn=cmd_logs)
