"""``spindle.tune.schedulers``: trial schedulers (Ray's import path), each a pure state machine."""

from spindle.tune.schedulers.async_hyperband import ASHAScheduler, AsyncHyperBandScheduler
from spindle.tune.schedulers.hyperband import HyperBandScheduler
from spindle.tune.schedulers.median_stopping_rule import MedianStoppingRule
from spindle.tune.schedulers.pbt import PopulationBasedTraining
from spindle.tune.schedulers.trial_scheduler import Exploit, FIFOScheduler, TrialScheduler

__all__ = ["ASHAScheduler", "AsyncHyperBandScheduler", "Exploit", "FIFOScheduler", "HyperBandScheduler",
           "MedianStoppingRule", "PopulationBasedTraining", "TrialScheduler"]
