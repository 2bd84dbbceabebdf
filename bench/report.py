"""Turning runs into the summary table and the JSON record; pure functions, no I/O except ``write``.

Every ratio is oriented so that > 1 means Spindle is better: spindle/ray for throughput, ray/spindle
for seconds, MiB and process counts. Booleans (zero-copy) get no ratio; both values are shown.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.spec import METRICS, Better

IMPLS = ("spindle", "ray")


@dataclass
class Run:
    workload: str
    impl: str
    rep: int
    ok: bool
    wall_s: float
    peak_mib: float  # PSS sum of the run's process tree (bench/treemem.py)
    metrics: dict[str, Any]
    error: str | None = None
    peak_rss_mib: float = 0.0  # summed RSS of the tree, for comparison


@dataclass
class Row:
    metric: str
    unit: str
    better: str
    spindle: float | bool | None
    ray: float | bool | None
    ratio: float | None
    spindle_n: int
    ray_n: int


def _median(values: list[Any]) -> float | bool | None:
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return all(values)  # a property must hold in every run
    return float(statistics.median(float(v) for v in values))


def ratio(better: Better, spindle: float | bool | None, ray: float | bool | None) -> float | None:
    if better is Better.BOOL or spindle is None or ray is None:
        return None
    s, r = float(spindle), float(ray)
    if better is Better.HIGHER:
        return s / r if r else None
    return r / s if s else None


def summarize(runs: list[Run], metric_names: list[str]) -> list[Row]:
    rows = []
    for name in metric_names:
        meta = METRICS[name]
        per_impl = {
            impl: [r.metrics[name] for r in runs if r.ok and r.impl == impl and r.metrics.get(name) is not None]
            for impl in IMPLS
        }
        s, r = _median(per_impl["spindle"]), _median(per_impl["ray"])
        rows.append(
            Row(
                name,
                meta.unit,
                meta.better.value,
                s,
                r,
                ratio(meta.better, s, r),
                len(per_impl["spindle"]),
                len(per_impl["ray"]),
            )
        )
    return rows


def format_value(v: float | bool | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def table(rows: list[Row], markdown: bool = False) -> str:
    """A fixed-width (or Markdown) table; the header says which way the ratio points."""
    head = ["metric", "unit", "Spindle", "Ray", "ratio (>1 = Spindle better)"]
    body = [
        [
            r.metric,
            r.unit,
            format_value(r.spindle),
            format_value(r.ray),
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*x) for x in [head, *body])


def heading(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    return (
        f"Spindle vs Ray, {meta['date']}, {m['hostname']} ({m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB), "
        f"commit {meta['git_commit']}; median of {meta['reps']} fresh-process runs each; "
        "ratio > 1 means Spindle is better (throughput Spindle/Ray, time and memory Ray/Spindle)"
    )


def record(meta: dict[str, Any], runs: list[Run], rows: list[Row]) -> dict[str, Any]:
    return {
        "meta": meta,
        "summary": [asdict(r) for r in rows],
        "runs": [asdict(r) for r in runs],
    }


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
