"""The entry points: ``Tuner(...).fit()`` with its config objects, and the older ``tune.run(...)``.

Both validate their input, build the searcher, scheduler and stop criteria, and hand them to the trial
runner; ``spindle.init()`` is called first when no cluster is connected (as Ray does).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from spindle.tune._progress import ProgressReporter
from spindle.tune._runner import TrialRunner, TuneError
from spindle.tune._trial import ERROR, Trial
from spindle.tune.result_grid import ExperimentAnalysis, ResultGrid
from spindle.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler
from spindle.tune.search.searcher import BasicVariantGenerator, Searcher
from spindle.tune.stopper import make_stopper

DEFAULT_RESULTS_DIR = "~/spindle_results"


@dataclass
class TuneConfig:
    metric: str | None = None
    mode: str | None = None
    search_alg: Searcher | None = None
    scheduler: TrialScheduler | None = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None
    trial_dirname_creator: Any = None
    trial_name_creator: Any = None


@dataclass
class FailureConfig:
    max_failures: int = 0
    fail_fast: bool | str = False


@dataclass
class CheckpointConfig:
    num_to_keep: int | None = None
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"


@dataclass
class RunConfig:
    name: str | None = None
    storage_path: str | None = None
    stop: Any = None
    failure_config: FailureConfig = field(default_factory=FailureConfig)
    checkpoint_config: CheckpointConfig = field(default_factory=CheckpointConfig)
    verbose: int = 1
    progress_reporter: Any = None
    callbacks: list[Any] | None = None


def _resources_fn(trainable: Any, resources_per_trial: Any) -> Any:
    spec = resources_per_trial if resources_per_trial is not None else getattr(trainable, "_tune_resources", None)
    if spec is None and isinstance(trainable, type) and hasattr(trainable, "default_resource_request"):
        return lambda config: trainable.default_resource_request(config) or {"cpu": 1}
    if spec is None:
        return lambda config: {"cpu": 1}
    if callable(spec):
        return spec
    if not isinstance(spec, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in spec.values()):
        raise ValueError(f"resources_per_trial must be a dict like {{'cpu': 1, 'gpu': 0}}, got {spec!r}")
    return lambda config: dict(spec)


def _execute(trainable: Any, param_space: dict[str, Any], tc: TuneConfig, rc: RunConfig,
             resources_per_trial: Any = None) -> tuple[list[Trial], str, str | None, str | None]:
    import spindle

    if not callable(trainable):
        raise TypeError(f"the trainable must be a function or a tune.Trainable subclass, got {trainable!r}")
    if tc.mode not in (None, "min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {tc.mode!r}")
    if tc.num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {tc.num_samples}")
    if not spindle.is_initialized():
        spindle.init()
    searcher = tc.search_alg or BasicVariantGenerator()
    scheduler = tc.scheduler or FIFOScheduler()
    scheduler.set_search_properties(tc.metric, tc.mode)
    searcher.set_search_properties(tc.metric or scheduler.metric, tc.mode or getattr(scheduler, "_mode", None),
                                   param_space or {}, tc.num_samples)
    name = rc.name or f"{getattr(trainable, '__name__', 'trainable')}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    root = rc.storage_path or os.environ.get("SPINDLE_TUNE_RESULTS_DIR") or DEFAULT_RESULTS_DIR
    path = os.path.join(os.path.expanduser(root), name)
    os.makedirs(path, exist_ok=True)
    stopper, stop_all = make_stopper(rc.stop)
    ck = rc.checkpoint_config
    metric = tc.metric or scheduler.metric or searcher.metric
    mode = tc.mode or getattr(scheduler, "_mode", None) or searcher.mode
    reporter = rc.progress_reporter or ProgressReporter(metric=metric, mode=mode, verbose=rc.verbose)
    runner = TrialRunner(
        trainable, name, path, searcher, scheduler, stopper, stop_all, _resources_fn(trainable, resources_per_trial),
        tc.num_samples, tc.max_concurrent_trials, rc.failure_config.max_failures, rc.failure_config.fail_fast,
        ck.checkpoint_frequency, bool(ck.checkpoint_at_end), ck.num_to_keep, tc.time_budget_s, reporter,
        tc.trial_dirname_creator)
    return runner.run(), path, metric, mode


class Tuner:
    def __init__(self, trainable: Any, *, param_space: dict[str, Any] | None = None,
                 tune_config: TuneConfig | None = None, run_config: RunConfig | None = None) -> None:
        self.trainable, self.param_space = trainable, param_space or {}
        self.tune_config, self.run_config = tune_config or TuneConfig(), run_config or RunConfig()

    def fit(self) -> ResultGrid:
        trials, path, metric, mode = _execute(self.trainable, self.param_space, self.tune_config, self.run_config)
        return ResultGrid(trials, path, metric, mode)


def run(run_or_experiment: Any, *, name: str | None = None, metric: str | None = None, mode: str | None = None,
        stop: Any = None, time_budget_s: float | None = None, config: dict[str, Any] | None = None,
        resources_per_trial: Any = None, num_samples: int = 1, storage_path: str | None = None,
        search_alg: Searcher | None = None, scheduler: TrialScheduler | None = None,
        checkpoint_config: CheckpointConfig | None = None, checkpoint_freq: int = 0, checkpoint_at_end: bool = False,
        keep_checkpoints_num: int | None = None, verbose: int = 1, progress_reporter: Any = None,
        max_failures: int = 0, fail_fast: bool | str = False, raise_on_failed_trial: bool = True,
        max_concurrent_trials: int | None = None, local_dir: str | None = None,
        trial_dirname_creator: Any = None, **unsupported: Any) -> ExperimentAnalysis:
    """Ray's ``tune.run``: returns an :class:`ExperimentAnalysis`; raises :class:`TuneError` at the end
    when a trial errored (unless ``raise_on_failed_trial=False``)."""
    if unsupported:
        raise TypeError(f"tune.run does not support {sorted(unsupported)} in Spindle")
    tc = TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
                    max_concurrent_trials=max_concurrent_trials, time_budget_s=time_budget_s,
                    trial_dirname_creator=trial_dirname_creator)
    ck = checkpoint_config or CheckpointConfig(num_to_keep=keep_checkpoints_num, checkpoint_frequency=checkpoint_freq,
                                               checkpoint_at_end=checkpoint_at_end)
    rc = RunConfig(name=name, storage_path=storage_path or local_dir, stop=stop, verbose=verbose,
                   failure_config=FailureConfig(max_failures=max_failures, fail_fast=fail_fast),
                   checkpoint_config=ck, progress_reporter=progress_reporter)
    trials, path, default_metric, default_mode = _execute(run_or_experiment, config or {}, tc, rc,
                                                          resources_per_trial)
    failed = [t for t in trials if t.status == ERROR]
    if failed and raise_on_failed_trial:
        raise TuneError(f"{len(failed)} trial(s) did not complete: {', '.join(map(str, failed))}; "
                        f"first error:\n{failed[0].error_msg}")
    return ExperimentAnalysis(trials, path, default_metric, default_mode)
