"""The progress table: redrawn in place about once a second on a terminal, a one-line summary
every few seconds when the output is a file or pipe; the full table at the end either way."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any, TextIO

from spindle.tune._trial import Trial
from spindle.tune.search.variant_generator import flatten

_AUTO = {"training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "trial_id", "done", "date",
         "iterations_since_restore", "config", "pid", "hostname", "node_ip", "time_since_restore"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(trials: list[Trial], metric: str | None, max_rows: int = 20) -> str:
    params = sorted({k for t in trials for k in flatten(t.config)})[:6]
    metrics: list[str] = [metric] if metric else []
    for t in trials:
        for key in t.last_result:
            if key not in _AUTO and key not in metrics and not isinstance(t.last_result[key], dict) and len(metrics) < 3:
                metrics.append(key)
    head = ["Trial name", "status", *params, "iter", "total time (s)", *metrics]
    rows = [[str(t), t.status, *(_fmt(flatten(t.config).get(p, "")) for p in params), str(t.iteration),
             f"{t.time_total_s:.2f}", *(_fmt(t.last_result.get(m, "")) for m in metrics)] for t in trials]
    shown = rows if len(rows) <= max_rows else rows[: max_rows - 1]
    widths = [max(len(r[i]) for r in [head, *shown]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *shown]]
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more trials not shown")
    return "\n".join(lines)


def summary(trials: list[Trial], metric: str | None, mode: str | None) -> str:
    counts = Counter(t.status for t in trials)
    text = "Trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    scored = [t for t in trials if metric and isinstance(t.last_result.get(metric), (int, float))]
    if scored and metric:
        pick = max if mode != "min" else min
        best = pick(scored, key=lambda t: t.last_result[metric])
        text += f" | best {metric}={_fmt(best.last_result[metric])} ({best})"
    return text


class ProgressReporter:
    def __init__(self, out: TextIO | None = None, metric: str | None = None, mode: str | None = None,
                 verbose: int = 1, tty: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.metric, self.mode, self.verbose = metric, mode, verbose
        self.tty = self.out.isatty() if tty is None else tty
        self._last = 0.0
        self._drawn = 0

    def update(self, trials: list[Trial], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.verbose < 1 or now - self._last < (1.0 if self.tty else 5.0):
            return
        self._last = now
        if self.tty:
            text = f"== {summary(trials, self.metric, self.mode)} ==\n{table(trials, self.metric)}"
            erase = f"\x1b[{self._drawn}A\x1b[J" if self._drawn else ""
            self.out.write(erase + text + "\n")
            self._drawn = text.count("\n") + 1
        else:
            self.out.write(summary(trials, self.metric, self.mode) + "\n")
        self.out.flush()

    def final(self, trials: list[Trial], elapsed: float) -> None:
        if self.verbose < 1:
            return
        if self.tty and self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\x1b[J")
        self.out.write(f"== Tune finished in {elapsed:.2f} s. {summary(trials, self.metric, self.mode)} ==\n")
        self.out.write(table(trials, self.metric, max_rows=50) + "\n")
        self.out.flush()
