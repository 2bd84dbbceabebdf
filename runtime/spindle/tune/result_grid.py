"""What a run returns: ``ResultGrid`` (from ``Tuner.fit``) and ``ExperimentAnalysis`` (from
``tune.run``), both reading the trials' records; pandas is optional (only ``*_df`` need it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from spindle.tune._trial import ERROR, TERMINATED, Trial
from spindle.tune.checkpoint import Checkpoint
from spindle.tune.search.variant_generator import flatten


def _score(trial: Trial, metric: str, scope: str) -> float | None:
    history = [r[metric] for r in trial.metric_history if isinstance(r.get(metric), (int, float))]
    if not history:
        return None
    if scope == "last":
        return float(history[-1])
    if scope.startswith("last-") and scope.endswith("-avg"):
        n = int(scope[5:-4])
        return sum(history[-n:]) / len(history[-n:])
    if scope == "avg":
        return sum(history) / len(history)
    if scope == "all":
        return float(max(history))  # callers flip the sign for "min"
    raise ValueError(f"scope must be 'last', 'avg', 'last-N-avg' or 'all', got {scope!r}")


def best_trial(trials: list[Trial], metric: str | None, mode: str | None, scope: str = "last",
               filter_nan_and_inf: bool = True) -> Trial | None:
    if not metric or mode not in ("min", "max"):
        raise ValueError("pass metric and mode ('min' or 'max') here or to TuneConfig/tune.run")
    best, best_value = None, None
    for trial in trials:
        if scope == "all":
            values = [float(r[metric]) for r in trial.metric_history if isinstance(r.get(metric), (int, float))]
            value = (max(values) if mode == "max" else min(values)) if values else None
        else:
            value = _score(trial, metric, scope)
        if value is None or (filter_nan_and_inf and not math.isfinite(value)):
            continue
        if best_value is None or (value > best_value if mode == "max" else value < best_value):
            best, best_value = trial, value
    return best


def _dataframe(rows: list[dict[str, Any]]) -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("this needs pandas (pip install pandas); use .result_rows for plain dicts") from exc
    return pd.DataFrame(rows)


def _row(trial: Trial) -> dict[str, Any]:
    result = {k: v for k, v in trial.last_result.items() if k != "config"}
    return {**result, **{f"config/{k}": v for k, v in flatten(trial.config).items()},
            "trial_id": trial.trial_id, "logdir": trial.path, "status": trial.status}


@dataclass
class Result:
    metrics: dict[str, Any]
    config: dict[str, Any]
    checkpoint: Checkpoint | None
    error: BaseException | None
    path: str
    metrics_history: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoints: list[tuple[Checkpoint, dict[str, Any]]] = field(default_factory=list)

    @property
    def metrics_dataframe(self) -> Any:
        return _dataframe(self.metrics_history)


class TrialError(Exception):
    """The error a trial ended with (its traceback as the message)."""


def _result(trial: Trial) -> Result:
    return Result(metrics={k: v for k, v in trial.last_result.items()}, config=trial.config,
                  checkpoint=trial.checkpoint, error=TrialError(trial.error_msg) if trial.error_msg else None,
                  path=trial.path, metrics_history=list(trial.metric_history),
                  best_checkpoints=[(c, trial.last_result) for c in trial.checkpoints])


class ResultGrid:
    def __init__(self, trials: list[Trial], experiment_path: str, metric: str | None, mode: str | None) -> None:
        self._trials, self.experiment_path, self._metric, self._mode = trials, experiment_path, metric, mode
        self._results = [_result(t) for t in trials]

    def get_best_result(self, metric: str | None = None, mode: str | None = None, scope: str = "last",
                        filter_nan_and_inf: bool = True) -> Result:
        trial = best_trial(self._trials, metric or self._metric, mode or self._mode, scope, filter_nan_and_inf)
        if trial is None:
            raise RuntimeError(f"no trial reported {metric or self._metric!r}: nothing to pick the best from")
        return self._results[self._trials.index(trial)]

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, i: int) -> Result:
        return self._results[i]

    def __iter__(self) -> Any:
        return iter(self._results)

    @property
    def errors(self) -> list[BaseException]:
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        return sum(t.status == ERROR for t in self._trials)

    @property
    def num_terminated(self) -> int:
        return sum(t.status == TERMINATED for t in self._trials)

    @property
    def result_rows(self) -> list[dict[str, Any]]:
        return [_row(t) for t in self._trials]

    def get_dataframe(self) -> Any:
        return _dataframe(self.result_rows)

    def __repr__(self) -> str:
        return f"ResultGrid<{len(self)} results, {self.num_errors} errors>"


class ExperimentAnalysis:
    """``tune.run``'s return value (Ray's ``ExperimentAnalysis``)."""

    def __init__(self, trials: list[Trial], experiment_path: str, metric: str | None, mode: str | None) -> None:
        self.trials, self.experiment_path = trials, experiment_path
        self.default_metric, self.default_mode = metric, mode

    def get_best_trial(self, metric: str | None = None, mode: str | None = None, scope: str = "last",
                       filter_nan_and_inf: bool = True) -> Trial | None:
        return best_trial(self.trials, metric or self.default_metric, mode or self.default_mode, scope,
                          filter_nan_and_inf)

    def get_best_config(self, metric: str | None = None, mode: str | None = None,
                        scope: str = "last") -> dict[str, Any] | None:
        trial = self.get_best_trial(metric, mode, scope)
        return trial.config if trial else None

    def get_best_checkpoint(self, trial: Trial, metric: str | None = None, mode: str | None = None) -> Any:
        return trial.checkpoint

    @property
    def best_trial(self) -> Trial | None:
        return self.get_best_trial()

    @property
    def best_config(self) -> dict[str, Any] | None:
        return self.get_best_config()

    @property
    def best_result(self) -> dict[str, Any] | None:
        trial = self.get_best_trial()
        return trial.last_result if trial else None

    @property
    def best_checkpoint(self) -> Checkpoint | None:
        trial = self.get_best_trial()
        return trial.checkpoint if trial else None

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        return {t.trial_id: t.last_result for t in self.trials}

    @property
    def result_rows(self) -> list[dict[str, Any]]:
        return [_row(t) for t in self.trials]

    @property
    def results_df(self) -> Any:
        return _dataframe(self.result_rows)

    def dataframe(self, metric: str | None = None, mode: str | None = None) -> Any:
        return self.results_df

    @property
    def trial_dataframes(self) -> dict[str, Any]:
        return {t.path: _dataframe(t.metric_history) for t in self.trials}
