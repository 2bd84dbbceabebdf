"""Median stopping: stop a trial whose best result is worse than the median of the other trials'
running means at the same time (Ray's ``MedianStoppingRule`` decisions)."""

from __future__ import annotations

import statistics
from typing import Any

from spindle.tune.schedulers.trial_scheduler import TrialScheduler


class MedianStoppingRule(TrialScheduler):
    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None, mode: str | None = None,
                 grace_period: float = 60.0, min_samples_required: int = 3, min_time_slice: float = 0,
                 hard_stop: bool = True) -> None:
        super().__init__(metric, mode)
        self._time_attr, self._grace_period = time_attr, grace_period
        self._min_samples = min_samples_required
        self._hard_stop = hard_stop
        self._results: dict[str, list[dict[str, Any]]] = {}
        self._stopped: set[str] = set()

    def on_trial_add(self, trial_id: str, config: dict[str, Any]) -> None:
        self._require_metric()
        self._results.setdefault(trial_id, [])

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> str:
        if self._time_attr not in result or self._metric not in result:
            return self.CONTINUE
        if trial_id in self._stopped:
            return self.STOP
        time = result[self._time_attr]
        self._results.setdefault(trial_id, []).append(result)
        if time < self._grace_period:
            return self.CONTINUE
        others = [t for t, rs in self._results.items() if t != trial_id and rs and rs[-1][self._time_attr] >= time]
        if len(others) < self._min_samples:
            return self.CONTINUE
        median = statistics.median(self._running_mean(t, time) for t in others)
        metric = str(self._metric)
        best = max(self._metric_op * r[metric] for r in self._results[trial_id])
        if best < median and time > self._grace_period:
            self._stopped.add(trial_id)
            return self.STOP if self._hard_stop else self.PAUSE
        return self.CONTINUE

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None) -> None:
        if result and self._time_attr in result and self._metric in result:
            self._results.setdefault(trial_id, []).append(result)

    def _running_mean(self, trial_id: str, time: float) -> float:
        scoped = [r for r in self._results[trial_id] if self._grace_period <= r[self._time_attr] <= time]
        return statistics.fmean(self._metric_op * r[str(self._metric)] for r in scoped) if scoped else float("-inf")

    def debug_string(self) -> str:
        return f"MedianStoppingRule: {len(self._stopped)} of {len(self._results)} trials stopped"
