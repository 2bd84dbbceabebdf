"""Tune on a real embedded cluster (2 CPUs): trials as actors, concurrency bounded by the CPUs,
checkpoints restored after a trial's worker process is killed, class trainables, PBT exploit,
HyperBand pause/resume, result files and the Optuna adapter. Iteration counts are small."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spindle
from spindle import tune
from spindle.tune.schedulers import HyperBandScheduler, PopulationBasedTraining


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    spindle.init(num_cpus=2, log_to_driver=True)
    try:
        yield
    finally:
        spindle.shutdown()


@spindle.remote
class Gauge:
    """How many trials run at once: each trial enters, waits until ``expect`` are in, and leaves."""

    def __init__(self) -> None:
        self.now = self.peak = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1

    def read(self) -> tuple[int, int]:
        return self.now, self.peak


def _concurrency_run(gauge: Any, expect: int, resources: dict[str, float], tmp: Path) -> None:
    def trainable(config: dict[str, Any]) -> None:
        spindle.get(gauge.enter.remote())
        deadline = time.monotonic() + 60
        while spindle.get(gauge.read.remote())[1] < expect and time.monotonic() < deadline:
            time.sleep(0.02)
        spindle.get(gauge.leave.remote())
        tune.report(done_at=time.time())

    tune.run(tune.with_resources(trainable, resources), num_samples=4, storage_path=str(tmp), verbose=0)


def test_trials_run_as_many_at_once_as_the_cluster_cpus_fit(tmp_path: Path) -> None:
    gauge = Gauge.remote()
    _concurrency_run(gauge, 2, {"cpu": 1}, tmp_path)
    assert spindle.get(gauge.read.remote()) == (0, 2)


def test_trials_needing_two_cpus_run_one_at_a_time(tmp_path: Path) -> None:
    gauge = Gauge.remote()
    _concurrency_run(gauge, 1, {"cpu": 2}, tmp_path)
    assert spindle.get(gauge.read.remote()) == (0, 1)


def test_a_trial_larger_than_the_cluster_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whole cluster has 2 CPU"):
        tune.run(lambda c: tune.report(x=1), resources_per_trial={"cpu": 3}, storage_path=str(tmp_path), verbose=0)


def _counting(config: dict[str, Any]) -> None:
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        start = json.loads((Path(checkpoint.path) / "state.json").read_text())["step"] + 1
    for step in range(start, config["steps"]):
        directory = Path(config["scratch"]) / f"ckpt-{os.getpid()}-{step}"
        directory.mkdir(parents=True)
        (directory / "state.json").write_text(json.dumps({"step": step}))
        tune.report({"step": step, "start": start, "pid": os.getpid()}, checkpoint=tune.Checkpoint.from_directory(directory))
        marker = Path(config["scratch"]) / "killed"
        if step == config["kill_at"] and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)  # the trial's worker process dies mid-run


def test_a_trial_whose_worker_is_killed_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    config = {"steps": 6, "kill_at": 3, "scratch": str(tmp_path / "scratch")}
    analysis = tune.run(_counting, config=config, max_failures=1, storage_path=str(tmp_path), name="retry", verbose=0)
    [trial] = analysis.trials
    assert trial.status == "TERMINATED" and trial.num_failures == 1
    assert [r["step"] for r in trial.metric_history] == [0, 1, 2, 3, 4, 5]
    assert [r["training_iteration"] for r in trial.metric_history] == [1, 2, 3, 4, 5, 6]
    assert [r["start"] for r in trial.metric_history] == [0, 0, 0, 0, 4, 4]
    assert len({r["pid"] for r in trial.metric_history}) == 2
    assert "ActorDied" in (Path(trial.path) / "error.txt").read_text() or \
        "died" in (Path(trial.path) / "error.txt").read_text()
    assert trial.checkpoint is not None and Path(trial.checkpoint.path, "state.json").exists()


def test_a_failing_trial_is_reported_with_its_traceback_and_raises_only_when_asked(tmp_path: Path) -> None:
    def broken(config: dict[str, Any]) -> None:
        tune.report(x=1)
        if config["fail"]:
            raise RuntimeError("boom in the trainable")
        tune.report(x=2)

    space = {"fail": tune.grid_search([False, True])}
    grid = tune.Tuner(broken, param_space=space,
                      run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    assert len(grid) == 2 and grid.num_errors == 1 and grid.num_terminated == 1
    assert "boom in the trainable" in str(grid.errors[0]) and "Traceback" in str(grid.errors[0])
    assert grid[0].metrics["x"] == 2
    with pytest.raises(tune.TuneError, match="boom in the trainable"):
        tune.run(broken, config=space, storage_path=str(tmp_path), verbose=0)
    with pytest.raises(RuntimeError, match="only work inside a trial"):
        tune.report(x=1)


class Accumulator(tune.Trainable):
    def setup(self, config: dict[str, Any]) -> None:
        self.total = 0.0
        self.restored = False

    def step(self) -> dict[str, Any]:
        self.total += self.config["lr"]
        return {"score": self.total, "restored": self.restored}

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any]:
        return {"total": self.total}

    def load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.total, self.restored = checkpoint["total"], True


def test_class_trainables_step_checkpoint_and_stop_on_criteria(tmp_path: Path) -> None:
    grid = tune.Tuner(
        Accumulator, param_space={"lr": tune.grid_search([1.0, 2.0])},
        tune_config=tune.TuneConfig(metric="score", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="cls", stop={"training_iteration": 4}, verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2, num_to_keep=1))).fit()
    best = grid.get_best_result()
    assert best.config == {"lr": 2.0} and best.metrics["score"] == 8.0 and best.metrics["training_iteration"] == 4
    assert best.checkpoint is not None and best.checkpoint.path.endswith("checkpoint_000004")
    assert sorted(p.name for p in Path(best.path).glob("checkpoint_*")) == ["checkpoint_000004"]  # num_to_keep=1


@spindle.remote
class Lockstep:
    """Keeps two trials within one iteration of each other, so PBT sees both (not one racing ahead
    while the other's actor starts)."""

    def __init__(self) -> None:
        self.at: dict[str, int] = {}

    def mark(self, trial_id: str, iteration: int) -> None:
        self.at[trial_id] = iteration

    def others_at_least(self, trial_id: str, iteration: int) -> bool:
        others = [v for k, v in self.at.items() if k != trial_id]
        return len(others) >= 1 and min(others) >= iteration


class LockstepAccumulator(Accumulator):
    def step(self) -> dict[str, Any]:
        lock = spindle.get_actor("pbt-lockstep")
        spindle.get(lock.mark.remote(self.trial_id, self.iteration))
        deadline = time.monotonic() + 60
        while not spindle.get(lock.others_at_least.remote(self.trial_id, self.iteration - 1)):
            assert time.monotonic() < deadline, "the other trial never caught up"
            time.sleep(0.01)
        return super().step()


def test_pbt_clones_a_better_trials_checkpoint_with_a_mutated_config(tmp_path: Path) -> None:
    lock = Lockstep.options(name="pbt-lockstep").remote()
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                  hyperparam_mutations={"lr": [1.0, 2.0, 3.0, 4.0]}, seed=0)
    analysis = tune.run(LockstepAccumulator, config={"lr": tune.grid_search([1.0, 4.0])}, metric="score",
                        mode="max", scheduler=pbt, stop={"training_iteration": 8}, storage_path=str(tmp_path), verbose=0)
    # Whichever order the two trials report in, the better one is told to SAVE at iteration 4 at the
    # latest (both have scores from iteration 2 on), so the worse one exploits it by iteration 6 (the
    # lockstep keeps the trials within one iteration, so neither finishes alone).
    assert pbt.exploits, "the worse trial was never told to exploit the better one"
    target, source, new_config = pbt.exploits[0]
    trials = {t.trial_id: t for t in analysis.trials}
    assert trials[source].config == {"lr": 4.0}
    restored = [r for r in trials[target].metric_history if r["restored"]]
    assert restored, "the exploiting trial did not restart from the cloned checkpoint"
    first = restored[0]
    # It continues from the source's checkpoint (iteration and state), with the explored lr.
    source_at = trials[source].metric_history[first["training_iteration"] - 2]
    assert first["score"] == source_at["score"] + new_config["lr"]
    assert all(t.last_result["training_iteration"] == 8 for t in analysis.trials)
    spindle.kill(lock)


def _hb_trainable(config: dict[str, Any]) -> None:
    checkpoint = tune.get_checkpoint()
    step = int(Path(checkpoint.path, "step").read_text()) if checkpoint else 0
    while True:
        step += 1
        directory = Path(config["scratch"]) / f"{config['q']}-{step}-{time.time_ns()}"
        directory.mkdir(parents=True)
        (directory / "step").write_text(str(step))
        tune.report({"score": config["q"] * step, "step": step}, checkpoint=tune.Checkpoint.from_directory(directory))


def test_hyperband_pauses_trials_and_resumes_the_best_from_their_checkpoints(tmp_path: Path) -> None:
    hb = HyperBandScheduler(max_t=9, reduction_factor=3)
    space = {"q": tune.grid_search([1, 2, 3, 4, 5, 6, 7, 8]), "scratch": str(tmp_path / "s")}
    analysis = tune.run(_hb_trainable, config=space, metric="score", mode="max", scheduler=hb,
                        storage_path=str(tmp_path), verbose=0)
    by_q = {t.config["q"]: t for t in analysis.trials}
    assert all(t.status == "TERMINATED" for t in analysis.trials)
    assert [by_q[q].last_result["training_iteration"] for q in (1, 2, 3)] == [9, 9, 9]  # bracket s=0: to max_t
    # Bracket s=1 (q = 4..8) pauses at 3; the best two (q = 7, 8) resume from their checkpoints to 9.
    assert [by_q[q].last_result["training_iteration"] for q in (4, 5, 6, 7, 8)] == [3, 3, 3, 9, 9]
    assert [r["step"] for r in by_q[8].metric_history] == list(range(1, 10))
    assert analysis.get_best_config()["q"] == 8
    assert analysis.best_config["q"] == 8 and analysis.best_result is not None


def test_the_schedulers_metric_and_mode_are_the_analysis_defaults(tmp_path: Path) -> None:
    from spindle.tune.schedulers import ASHAScheduler

    def objective(config: dict[str, Any]) -> None:
        for step in range(3):
            tune.report(score=config["a"] * step)

    analysis = tune.run(objective, config={"a": tune.grid_search([1, 3, 2])}, storage_path=str(tmp_path), verbose=0,
                        scheduler=ASHAScheduler(metric="score", mode="max", max_t=3, grace_period=3))
    assert analysis.best_config == {"a": 3} and analysis.best_result["score"] == 6


def test_tuner_writes_params_results_and_progress_per_trial(tmp_path: Path) -> None:
    def objective(config: dict[str, Any]) -> None:
        for i in range(3):
            tune.report(loss=config["x"] * i)

    grid = tune.Tuner(objective, param_space={"x": tune.grid_search([1, 2]), "nested": {"y": 5}},
                      tune_config=tune.TuneConfig(metric="loss", mode="min", max_concurrent_trials=1),
                      run_config=tune.RunConfig(name="files", storage_path=str(tmp_path), verbose=0,
                                                stop=lambda trial_id, result: result["loss"] >= 2)).fit()
    assert grid.experiment_path == str(tmp_path / "files")
    assert [r.metrics["training_iteration"] for r in grid] == [3, 2]  # x=2 stops at loss 2
    result = grid[0]
    assert json.loads(Path(result.path, "params.json").read_text()) == {"nested": {"y": 5}, "x": 1}
    lines = [json.loads(x) for x in Path(result.path, "result.json").read_text().splitlines()]
    assert [x["loss"] for x in lines] == [0, 1, 2]
    rows = list(csv.DictReader(open(Path(result.path, "progress.csv"))))
    assert [r["training_iteration"] for r in rows] == ["1", "2", "3"] and "config/nested/y" in rows[0]
    assert grid.get_best_result().config["x"] == 1
    assert {r["config/x"] for r in grid.result_rows} == {1, 2}


def test_optuna_search_drives_real_trials(tmp_path: Path) -> None:
    from spindle.tune.search.optuna import OptunaSearch

    def quadratic(config: dict[str, Any]) -> None:
        tune.report(loss=(config["x"] - 1) ** 2)

    search = OptunaSearch(seed=0)
    analysis = tune.run(quadratic, config={"x": tune.uniform(-3, 3)}, metric="loss", mode="min", num_samples=6,
                        search_alg=search, storage_path=str(tmp_path), verbose=0)
    assert len(analysis.trials) == 6 and all(t.status == "TERMINATED" for t in analysis.trials)
    assert len([t for t in search._study.trials if t.state.name == "COMPLETE"]) == 6
    assert analysis.best_result is not None and analysis.best_result["loss"] == min(
        t.last_result["loss"] for t in analysis.trials)
