"""``spindle.tune``: hyperparameter search on the cluster with Ray Tune's API.

``from spindle import tune`` then ``tune.run(...)`` or ``tune.Tuner(...).fit()``: each trial runs as an
actor holding its ``resources_per_trial``, as many at once as the cluster fits; schedulers
(``spindle.tune.schedulers``) and searchers (``spindle.tune.search``) decide what runs. Built only on
Spindle's public API (remote actors, get/wait/kill, cluster_resources).
"""

from spindle.tune._runner import TuneError
from spindle.tune.checkpoint import Checkpoint
from spindle.tune.result_grid import ExperimentAnalysis, Result, ResultGrid
from spindle.tune.search.sample import (
    choice,
    grid_search,
    lograndint,
    loguniform,
    qloguniform,
    qrandint,
    quniform,
    randint,
    randn,
    sample_from,
    uniform,
)
from spindle.tune.session import get_checkpoint, get_context, report
from spindle.tune.stopper import Stopper
from spindle.tune.trainable import Trainable, with_parameters, with_resources
from spindle.tune.tuner import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, Tuner, run

__all__ = [
    "Checkpoint", "CheckpointConfig", "ExperimentAnalysis", "FailureConfig", "Result", "ResultGrid", "RunConfig",
    "Stopper", "Trainable", "TuneConfig", "TuneError", "Tuner", "choice", "get_checkpoint", "get_context",
    "grid_search", "lograndint", "loguniform", "qloguniform", "qrandint", "quniform", "randint", "randn", "report",
    "run", "sample_from", "uniform", "with_parameters", "with_resources",
]
