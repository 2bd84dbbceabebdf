# ruff: noqa: I001  (the tutorial program is kept exactly as written)
# Hyperparameter search with Ray Tune's API: 10 random configs, ASHA stops the poor ones early.
# The program from the Ray Tune tutorial, unchanged except for the import (issue 13). Results go to
# ~/spindle_results/<name>/ (or $SPINDLE_TUNE_RESULTS_DIR). Under Ray 2.60, write
# tune.report({"score": intermediate_score}) instead: Ray no longer accepts the keyword form.
from spindle import tune
from spindle.tune.schedulers import ASHAScheduler

def objective(config):
    for step in range(100):
        intermediate_score = config["a"] * step + config["b"]
        tune.report(score=intermediate_score)

analysis = tune.run(objective, config={"a": tune.uniform(0, 1), "b": tune.uniform(0, 20)},
                    num_samples=10, scheduler=ASHAScheduler(metric="score", mode="max"))
print("Best config:", analysis.get_best_config(metric="score", mode="max"))
