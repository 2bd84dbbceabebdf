"""Per-trial result files, as Ray writes them: ``params.json`` (the config), ``result.json`` (one
JSON line per result) and ``progress.csv`` (one row per result, columns from the first one)."""

from __future__ import annotations

import csv
import json
import os
from typing import Any

from spindle.tune._trial import Trial
from spindle.tune.search.variant_generator import flatten


def _default(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


class TrialLogger:
    def __init__(self) -> None:
        self._columns: dict[str, list[str]] = {}

    def start(self, trial: Trial) -> None:
        os.makedirs(trial.path, exist_ok=True)
        with open(os.path.join(trial.path, "params.json"), "w") as f:
            json.dump(trial.config, f, indent=2, sort_keys=True, default=_default)

    def result(self, trial: Trial, result: dict[str, Any]) -> None:
        with open(os.path.join(trial.path, "result.json"), "a") as f:
            f.write(json.dumps(result, default=_default) + "\n")
        row = {k: v for k, v in flatten(result).items() if not isinstance(v, (dict, list))}
        path = os.path.join(trial.path, "progress.csv")
        columns = self._columns.get(trial.trial_id)
        if columns is None or not os.path.exists(path):
            columns = self._columns[trial.trial_id] = list(row)
            with open(path, "w", newline="") as f:
                csv.DictWriter(f, columns, extrasaction="ignore").writeheader()
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, columns, extrasaction="ignore").writerow(row)

    def error(self, trial: Trial, message: str) -> None:
        with open(os.path.join(trial.path, "error.txt"), "a") as f:
            f.write(message.rstrip() + "\n")
