"""The Ray Tune tutorial search (issue 13), timed as a whole script (interpreter start to exit).

``python bench/tune_asha.py --impl spindle|ray [--samples 10 --steps 100]``: ``tune.run`` of a
two-parameter objective reporting ``score = a * step + b`` each step, ``num_samples`` random configs,
ASHA (metric score, max). Uses the dict form ``tune.report({"score": ...})`` so Ray 2.60 runs it too.
Prints ``BENCH_RESULT`` with the total iterations run (ASHA stops most trials early) and the seconds
spent in ``tune.run``. A copy rather than an import of examples/tune_asha.py, so the bench stays fixed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", choices=["ray", "spindle"], required=True)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    ray = importlib.import_module(args.impl)
    tune = importlib.import_module(f"{args.impl}.tune")
    schedulers = importlib.import_module(f"{args.impl}.tune.schedulers")
    kwargs = {"include_dashboard": False} if args.impl == "ray" else {}
    ray.init(log_to_driver=False, **kwargs)
    steps = args.steps

    def objective(config: dict[str, float]) -> None:
        for step in range(steps):
            tune.report({"score": config["a"] * step + config["b"]})

    with tempfile.TemporaryDirectory() as storage:
        start = time.perf_counter()
        analysis = tune.run(objective, config={"a": tune.uniform(0, 1), "b": tune.uniform(0, 20)},
                            num_samples=args.samples, storage_path=storage, verbose=0,
                            scheduler=schedulers.ASHAScheduler(metric="score", mode="max"))
        fit_s = time.perf_counter() - start
        best = analysis.get_best_config(metric="score", mode="max")
        iterations = sum(t.last_result["training_iteration"] for t in analysis.trials)
    ray.shutdown()
    metrics = {"tune_asha_fit_seconds": fit_s, "tune_asha_total_iterations": iterations}
    print("BENCH_RESULT " + json.dumps({"ok": best is not None, "metrics": metrics}), flush=True)


if __name__ == "__main__":
    main()
