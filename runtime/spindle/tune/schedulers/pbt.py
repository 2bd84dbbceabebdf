"""Population Based Training (Ray's ``PopulationBasedTraining`` decisions, asynchronous mode).

Every ``perturbation_interval`` (in ``time_attr`` units) a trial's score is ranked against the other
live trials: a trial in the top ``quantile_fraction`` is checkpointed (SAVE); one in the bottom is told
to :class:`Exploit` a random top trial: restart from its checkpoint with a mutated copy of its config
(``explore``). Randomness comes from a ``random.Random(seed)`` so decisions are reproducible.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spindle.tune.schedulers.trial_scheduler import Exploit, TrialScheduler
from spindle.tune.search.sample import Categorical, Domain, Function


@dataclass
class _State:
    config: dict[str, Any]
    last_score: float | None = None
    last_perturbation_time: float = 0.0


def explore(config: dict[str, Any], mutations: dict[str, Any], resample_probability: float,
            perturbation_factors: tuple[float, float], rng: random.Random,
            custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """A mutated copy of ``config`` (Ray's rules: resample, shift a list index, or scale by a factor)."""
    new = copy.deepcopy(config)
    for key, dist in mutations.items():
        if isinstance(dist, dict):
            new[key] = explore(config.get(key, {}), dist, resample_probability, perturbation_factors, rng)
        elif isinstance(dist, (list, tuple, Categorical)):
            values = list(dist)
            if rng.random() < resample_probability or config.get(key) not in values:
                new[key] = rng.choice(values)
            else:
                shift = -1 if rng.random() > 0.5 else 1
                new[key] = values[min(max(values.index(config[key]) + shift, 0), len(values) - 1)]
        elif isinstance(dist, Domain) or callable(dist):
            if rng.random() < resample_probability or key not in config:
                new[key] = dist.sample(rng) if isinstance(dist, Domain) and not isinstance(dist, Function) \
                    else (dist.func(None) if isinstance(dist, Function) else dist())
            else:
                new[key] = config[key] * rng.choice(perturbation_factors)
                if isinstance(config[key], int):
                    new[key] = int(new[key])
        else:
            raise ValueError(f"hyperparam_mutations[{key!r}] must be a list, a tune domain or a function")
    return custom_explore_fn(new) if custom_explore_fn else new


class PopulationBasedTraining(TrialScheduler):
    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None, mode: str | None = None,
                 perturbation_interval: float = 60.0, burn_in_period: float = 0.0,
                 hyperparam_mutations: dict[str, Any] | None = None, quantile_fraction: float = 0.25,
                 resample_probability: float = 0.25, perturbation_factors: tuple[float, float] = (1.2, 0.8),
                 custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 log_config: bool = True, require_attrs: bool = True, synch: bool = False,
                 seed: int | None = None) -> None:
        super().__init__(metric, mode)
        if not hyperparam_mutations and not custom_explore_fn:
            raise ValueError("PopulationBasedTraining needs hyperparam_mutations or custom_explore_fn")
        if not 0 <= quantile_fraction <= 0.5:
            raise ValueError(f"quantile_fraction must be in [0, 0.5], got {quantile_fraction}")
        if synch:
            raise ValueError("PopulationBasedTraining(synch=True) is not supported by Spindle yet; use the "
                             "default asynchronous mode (synch=False)")
        if perturbation_interval <= 0:
            raise ValueError("perturbation_interval must be positive")
        self._time_attr, self._interval, self._burn_in = time_attr, perturbation_interval, burn_in_period
        self._mutations = hyperparam_mutations or {}
        self._quantile, self._resample_p = quantile_fraction, resample_probability
        self._factors, self._custom = perturbation_factors, custom_explore_fn
        self._require_attrs = require_attrs
        self._rng = random.Random(seed)
        self._state: dict[str, _State] = {}
        self._saved: set[str] = set()
        self.num_perturbations = 0
        self.exploits: list[tuple[str, str, dict[str, Any]]] = []  # (trial, cloned from, new config)

    def on_trial_add(self, trial_id: str, config: dict[str, Any]) -> None:
        self._require_metric()
        self._state[trial_id] = _State(config=copy.deepcopy(config))

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> Any:
        if self._time_attr not in result or self._metric not in result:
            if self._require_attrs:
                raise ValueError(f"PBT needs {self._time_attr!r} and {self._metric!r} in every result; got "
                                 f"{sorted(result)} (or pass require_attrs=False)")
            return self.CONTINUE
        state = self._state[trial_id]
        time = result[self._time_attr]
        if time < self._burn_in or time - state.last_perturbation_time < self._interval:
            return self.CONTINUE
        state.last_score = self._metric_op * result[self._metric]
        state.last_perturbation_time = time
        lower, upper = self._quantiles()
        sources = [t for t in upper if t in self._saved]  # only trials told to SAVE have a checkpoint
        if trial_id in lower and sources:
            source = self._rng.choice(sources)
            new_config = explore(self._state[source].config, self._mutations, self._resample_p, self._factors,
                                 self._rng, self._custom)
            state.config = copy.deepcopy(new_config)
            state.last_score = self._state[source].last_score
            self.num_perturbations += 1
            self.exploits.append((trial_id, source, new_config))
            self._saved.add(trial_id)
            return Exploit(source=source, config=new_config)
        if trial_id in upper:
            self._saved.add(trial_id)
            return self.SAVE
        return self.CONTINUE

    def _quantiles(self) -> tuple[list[str], list[str]]:
        scored = sorted((t for t, s in self._state.items() if s.last_score is not None),
                        key=lambda t: self._state[t].last_score)  # type: ignore[arg-type, return-value]
        if len(scored) <= 1:
            return [], []
        n = int(math.ceil(len(scored) * self._quantile))
        if n > len(scored) / 2:
            n = int(math.floor(len(scored) / 2))
        return scored[:n], scored[-n:] if n else []

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None) -> None:
        self._state.pop(trial_id, None)

    def on_trial_remove(self, trial_id: str) -> None:
        self._state.pop(trial_id, None)

    def debug_string(self) -> str:
        return f"PopulationBasedTraining: {self.num_perturbations} perturbs"
