"""Synchronous HyperBand (Ray's ``HyperBandScheduler``): brackets of trials run to a milestone,
pause there, and when every live trial of the bracket has reached it the best ``1/eta`` continue
to the next milestone (``eta`` times longer) while the rest stop.

Brackets are created as Ray does: bracket ``s`` (0, 1, ... ``s_max``) holds ``ceil(s_max_1/(s+1) *
eta**s)`` trials with a first milestone of ``max_t * eta**-s``.
"""

from __future__ import annotations

import math
from typing import Any

from spindle.tune.schedulers.trial_scheduler import TrialScheduler


class _Bracket:
    def __init__(self, n0: int, r0: float, eta: float, max_t: float) -> None:
        self.capacity, self.eta, self.max_t = n0, eta, max_t
        self.milestone = min(r0, max_t)
        self.keep = n0
        self.live: dict[str, float | None] = {}  # trial -> metric at the current milestone (None: not there yet)
        self.resumable: set[str] = set()

    def filled(self) -> bool:
        return len(self.live) >= self.capacity and not self.resumable

    def round_done(self) -> bool:
        return bool(self.live) and all(v is not None for v in self.live.values())

    def halve(self) -> tuple[list[str], list[str]]:
        self.keep = max(1, math.ceil(self.keep / self.eta))
        ranked = sorted(self.live, key=lambda t: self.live[t], reverse=True)  # type: ignore[arg-type, return-value]
        good, bad = ranked[: self.keep], ranked[self.keep :]
        self.milestone = min(self.milestone * self.eta, self.max_t)
        for t in bad:
            del self.live[t]
        for t in good:
            self.live[t] = None
        self.resumable = set(good)
        return good, bad


class HyperBandScheduler(TrialScheduler):
    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: float = 81, reduction_factor: float = 3, stop_last_trials: bool = True) -> None:
        super().__init__(metric, mode)
        if reduction_factor <= 1 or max_t <= 0:
            raise ValueError("HyperBand needs reduction_factor > 1 and max_t > 0")
        self._time_attr, self._max_t, self._eta = time_attr, max_t, reduction_factor
        self._s_max_1 = int(round(math.log(max_t) / math.log(reduction_factor))) + 1
        self._brackets: list[_Bracket] = []
        self._bracket_of: dict[str, _Bracket] = {}
        self._to_stop: list[str] = []
        self._s = 0

    def _new_bracket(self) -> _Bracket:
        while True:
            s = self._s % self._s_max_1
            self._s += 1
            r0 = int(self._max_t * self._eta ** (-s))
            if r0 > 0:
                return _Bracket(math.ceil(self._s_max_1 / (s + 1) * self._eta ** s), r0, self._eta, self._max_t)

    def on_trial_add(self, trial_id: str, config: dict[str, Any]) -> None:
        self._require_metric()
        if not self._brackets or len(self._brackets[-1].live) >= self._brackets[-1].capacity:
            self._brackets.append(self._new_bracket())
        bracket = self._brackets[-1]
        bracket.live[trial_id] = None
        self._bracket_of[trial_id] = bracket

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> str:
        bracket = self._bracket_of.get(trial_id)
        if bracket is None or self._time_attr not in result or self._metric not in result:
            return self.CONTINUE
        bracket.resumable.discard(trial_id)
        if result[self._time_attr] >= self._max_t:
            self._forget(trial_id)
            return self.STOP
        if result[self._time_attr] < bracket.milestone:
            return self.CONTINUE
        bracket.live[trial_id] = self._metric_op * result[self._metric]
        if not bracket.round_done():
            return self.PAUSE
        _, bad = bracket.halve()
        for t in bad:
            self._bracket_of.pop(t, None)
        self._to_stop.extend(t for t in bad if t != trial_id)
        if trial_id in bad:
            return self.STOP
        bracket.resumable.discard(trial_id)
        bracket.live[trial_id] = None
        return self.CONTINUE

    def _forget(self, trial_id: str) -> None:
        bracket = self._bracket_of.pop(trial_id, None)
        if bracket is None:
            return
        bracket.live.pop(trial_id, None)
        bracket.resumable.discard(trial_id)
        if bracket.round_done() and bracket.milestone < self._max_t:
            _, bad = bracket.halve()
            for t in bad:
                self._bracket_of.pop(t, None)
            self._to_stop.extend(bad)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None) -> None:
        self._forget(trial_id)

    def on_trial_remove(self, trial_id: str) -> None:
        self._forget(trial_id)

    def choose_trial_to_run(self, pending: list[str], paused: list[str]) -> str | None:
        for t in paused:
            bracket = self._bracket_of.get(t)
            if bracket is not None and t in bracket.resumable:
                return t
        return pending[0] if pending else None

    def trials_to_stop(self) -> list[str]:
        out, self._to_stop = self._to_stop, []
        return out

    def debug_string(self) -> str:
        return "HyperBand: " + " | ".join(f"milestone {b.milestone:g}: {len(b.live)} live"
                                          for b in self._brackets)
