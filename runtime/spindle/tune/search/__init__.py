"""``spindle.tune.search``: search algorithms (Ray's import path). Optuna lives in
``spindle.tune.search.optuna`` and needs the ``spindle[tune-optuna]`` extra."""

from spindle.tune.search.sample import (
    Categorical,
    Domain,
    Float,
    Function,
    Integer,
    choice,
    grid_search,
    loguniform,
    qloguniform,
    qrandint,
    quniform,
    randint,
    randn,
    sample_from,
    uniform,
)
from spindle.tune.search.searcher import BasicVariantGenerator, ConcurrencyLimiter, Searcher

__all__ = [
    "BasicVariantGenerator", "Categorical", "ConcurrencyLimiter", "Domain", "Float", "Function", "Integer",
    "Searcher", "choice", "grid_search", "loguniform", "qloguniform", "qrandint", "quniform", "randint",
    "randn", "sample_from", "uniform",
]
