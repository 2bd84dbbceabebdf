"""Optuna (TPE by default) behind the :class:`Searcher` interface, as ``ray.tune.search.optuna``.

Optuna is a well-kept optimizer library; this adapter only translates Tune's search space into
Optuna distributions and drives Optuna's ask-and-tell API. Install it with ``pip install
'spindle[tune-optuna]'``.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

from spindle.tune.search.sample import Categorical, Domain, Float, Function, Integer
from spindle.tune.search.searcher import Searcher
from spindle.tune.search.variant_generator import _set, _walk, is_grid, resolve

try:
    import optuna
except ImportError:  # pragma: no cover - exercised only without the extra
    optuna = None  # type: ignore[assignment]


def _distribution(domain: Domain) -> Any:
    if isinstance(domain, Float):
        if domain.normal is not None:
            raise ValueError("OptunaSearch cannot use tune.randn(); use tune.uniform or tune.loguniform")
        return optuna.distributions.FloatDistribution(domain.lower, domain.upper, log=domain.log,
                                                      step=None if domain.log else domain.q)
    if isinstance(domain, Integer):
        return optuna.distributions.IntDistribution(domain.lower, domain.upper - 1, log=domain.log,
                                                    step=domain.q or 1)
    if isinstance(domain, Categorical):
        return optuna.distributions.CategoricalDistribution(domain.categories)
    raise ValueError(f"OptunaSearch cannot translate {domain!r}: use uniform/loguniform/randint/choice")


class OptunaSearch(Searcher):
    """``OptunaSearch(metric=..., mode=..., sampler=None, seed=None)``; TPE unless ``sampler`` is given."""

    def __init__(self, space: dict[str, Any] | None = None, metric: str | None = None, mode: str | None = None,
                 points_to_evaluate: list[dict[str, Any]] | None = None, sampler: Any = None,
                 seed: int | None = None, evaluated_rewards: list[float] | None = None) -> None:
        if optuna is None:
            raise ImportError("OptunaSearch needs optuna: pip install 'spindle[tune-optuna]' (or pip install optuna)")
        super().__init__(metric, mode)
        self._space = space
        self._points = list(points_to_evaluate or [])
        self._sampler = sampler or optuna.samplers.TPESampler(seed=seed)
        self._study: Any = None
        self._distributions: dict[str, Any] = {}
        self._template: dict[str, Any] = {}
        self._paths: dict[str, tuple[Any, ...]] = {}
        self._ot_trials: dict[str, Any] = {}
        if space is not None and metric and mode:
            self._setup(space)

    def _setup(self, space: dict[str, Any]) -> None:
        if self._mode not in ("min", "max"):
            raise ValueError(f"OptunaSearch needs mode='min' or 'max', got {self._mode!r}")
        self._template = space
        for path, value in _walk(space):
            if is_grid(value):
                raise ValueError("OptunaSearch does not take tune.grid_search(); use tune.choice() instead")
            if isinstance(value, Domain) and not isinstance(value, Function):
                name = "/".join(str(p) for p in path)
                self._distributions[name] = _distribution(value)
                self._paths[name] = path
        self._study = optuna.create_study(sampler=self._sampler,
                                          direction="maximize" if self._mode == "max" else "minimize")
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              num_samples: int = 1) -> bool:
        super().set_search_properties(metric, mode, config, num_samples)
        if self._study is None:
            if not self._metric or not self._mode:
                raise ValueError("OptunaSearch needs metric and mode (on it or in TuneConfig/tune.run)")
            self._setup(self._space if self._space is not None else config)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._points:  # evaluated first, as given (Optuna's enqueue_trial)
            self._study.enqueue_trial(self._points.pop(0))
        ot_trial = self._study.ask(fixed_distributions=self._distributions)
        config = copy.deepcopy(self._template)
        for name, path in self._paths.items():
            _set(config, path, ot_trial.params[name])
        self._ot_trials[trial_id] = ot_trial
        return resolve(config, random.Random(ot_trial.number))

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        value = result.get(self._metric or "")
        if ot_trial is not None and isinstance(value, (int, float)) and math.isfinite(value):
            ot_trial.report(float(value), int(result.get("training_iteration", 0)))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.pop(trial_id, None)
        if ot_trial is None:
            return
        value = (result or {}).get(self._metric or "")
        if error or not isinstance(value, (int, float)):
            self._study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(ot_trial, float(value))
