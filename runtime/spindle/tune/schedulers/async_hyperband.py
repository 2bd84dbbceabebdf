"""ASHA (asynchronous successive halving), the decisions of Ray's ``AsyncHyperBandScheduler``.

Rungs sit at ``grace_period * reduction_factor**k`` (in ``time_attr`` units, up to ``max_t``). The
first result of a trial at or past a rung is recorded there; the trial stops when it is below the
``1 - 1/reduction_factor`` percentile of what that rung has recorded so far.
"""

from __future__ import annotations

import math
import random
from typing import Any

from spindle.tune.schedulers.trial_scheduler import TrialScheduler


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), NaNs ignored."""
    data = sorted(v for v in values if not math.isnan(v))
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


class _Bracket:
    def __init__(self, min_t: float, max_t: float, reduction_factor: float, s: int, stop_last_trials: bool) -> None:
        self.rf = reduction_factor
        max_rungs = int(math.log(max_t / min_t) / math.log(reduction_factor) - s + 1)
        self.rungs: list[tuple[float, dict[str, float]]] = [
            (min_t * reduction_factor ** (k + s), {}) for k in reversed(range(max_rungs))]
        self.stop_last_trials = stop_last_trials
        self.live = 0

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        if not recorded:
            return None
        return percentile(list(recorded.values()), (1 - 1 / self.rf) * 100)

    def on_result(self, trial_id: str, cur_iter: float, cur_rew: float | None) -> str:
        action = TrialScheduler.CONTINUE
        for milestone, recorded in self.rungs:
            if cur_iter >= milestone and trial_id in recorded and not self.stop_last_trials:
                break
            if cur_iter < milestone or trial_id in recorded:
                continue
            cutoff = self.cutoff(recorded)
            if cutoff is not None and cur_rew is not None and cur_rew < cutoff:
                action = TrialScheduler.STOP
            if cur_rew is not None:
                recorded[trial_id] = cur_rew
            break
        return action


class AsyncHyperBandScheduler(TrialScheduler):
    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: float = 100, grace_period: float = 1, reduction_factor: float = 4, brackets: int = 1,
                 stop_last_trials: bool = True, seed: int | None = None) -> None:
        super().__init__(metric, mode)
        if grace_period <= 0 or reduction_factor <= 1 or brackets <= 0 or max_t <= 0:
            raise ValueError("ASHA needs grace_period > 0, reduction_factor > 1, brackets >= 1 and max_t > 0")
        if grace_period > max_t:
            raise ValueError(f"grace_period ({grace_period}) must not exceed max_t ({max_t})")
        self._time_attr, self._max_t = time_attr, max_t
        self._brackets = [_Bracket(grace_period, max_t, reduction_factor, s, stop_last_trials)
                          for s in range(brackets)]
        self._stop_last_trials = stop_last_trials
        self._trial_info: dict[str, _Bracket] = {}
        self._rng = random.Random(seed)
        self.num_stopped = 0

    def on_trial_add(self, trial_id: str, config: dict[str, Any]) -> None:
        self._require_metric()
        sizes = [b.live for b in self._brackets]
        weights = [math.exp(s - max(sizes)) for s in sizes]
        bracket = self._rng.choices(self._brackets, weights=weights)[0] if len(self._brackets) > 1 \
            else self._brackets[0]
        bracket.live += 1
        self._trial_info[trial_id] = bracket

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> str:
        if self._time_attr not in result or self._metric not in result or trial_id not in self._trial_info:
            return self.CONTINUE
        if result[self._time_attr] >= self._max_t and self._stop_last_trials:
            action = self.STOP
        else:
            action = self._trial_info[trial_id].on_result(
                trial_id, result[self._time_attr], self._metric_op * result[self._metric])
        if action == self.STOP:
            self.num_stopped += 1
        return action

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None) -> None:
        bracket = self._trial_info.pop(trial_id, None)
        if bracket is None:
            return
        bracket.live -= 1
        if result and self._time_attr in result and self._metric in result:
            bracket.on_result(trial_id, result[self._time_attr], self._metric_op * result[self._metric])

    def on_trial_remove(self, trial_id: str) -> None:
        bracket = self._trial_info.pop(trial_id, None)
        if bracket is not None:
            bracket.live -= 1

    def rungs(self) -> list[list[tuple[float, dict[str, float]]]]:
        """Each bracket's rungs (milestone, {trial id: recorded score}), highest milestone first."""
        return [b.rungs for b in self._brackets]

    def debug_string(self) -> str:
        parts = [", ".join(f"{m:g}: {len(r)}" for m, r in b.rungs) for b in self._brackets]
        return f"AsyncHyperBand: {self.num_stopped} stopped; rungs (milestone: recorded) " + " | ".join(parts)


ASHAScheduler = AsyncHyperBandScheduler
