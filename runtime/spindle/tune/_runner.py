"""The trial runner: a thin loop applying the searcher's and scheduler's decisions with actors.

It starts trials while the cluster's resources (minus what its own trials hold) and
``max_concurrent_trials`` allow, waits for any trial's next result, and turns each scheduler decision
into actor calls: continue (ask for the next result), stop (kill the actor so its CPUs serve the next
trial at once), pause/exploit (checkpoint, kill, restart later or from another trial's checkpoint),
and retries failed trials from their last checkpoint up to ``max_failures``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import spindle
from spindle.tune._logger import TrialLogger
from spindle.tune._progress import ProgressReporter
from spindle.tune._trial import ERROR, PAUSED, PENDING, RUNNING, TERMINATED, Trial
from spindle.tune.checkpoint import Checkpoint, pack, unpack
from spindle.tune.schedulers.trial_scheduler import Exploit, TrialScheduler
from spindle.tune.search.searcher import BasicVariantGenerator, Searcher

log = logging.getLogger("spindle.tune")


class TuneError(Exception):
    """Trials failed (``raise_on_failed_trial``) or the run was told to fail fast."""


def option_resources(resources: dict[str, float]) -> dict[str, Any]:
    """Tune's ``{"cpu": 1, "gpu": 0, "custom": 2}`` as actor options."""
    opts: dict[str, Any] = {"num_cpus": 0.0, "num_gpus": 0.0, "resources": {}}
    for key, amount in resources.items():
        low = key.lower()
        if low == "cpu":
            opts["num_cpus"] = float(amount)
        elif low == "gpu":
            opts["num_gpus"] = float(amount)
        elif amount:
            opts["resources"][key] = float(amount)
    return opts


def cluster_keys(resources: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, amount in resources.items():
        name = key.upper() if key.lower() in ("cpu", "gpu") else key
        if amount:
            out[name] = out.get(name, 0.0) + float(amount)
    return out


class TrialRunner:
    def __init__(self, trainable: Any, name: str, experiment_path: str, searcher: Searcher,
                 scheduler: TrialScheduler, stopper: Callable[[str, dict[str, Any]], bool] | None,
                 stop_all: Callable[[], bool] | None, resources: Callable[[dict[str, Any]], dict[str, float]],
                 num_samples: int, max_concurrent: int | None, max_failures: int, fail_fast: bool | str,
                 checkpoint_frequency: int, checkpoint_at_end: bool, num_to_keep: int | None,
                 time_budget_s: float | None, reporter: ProgressReporter, trial_name_creator: Any = None) -> None:
        self.trainable, self.name, self.path = trainable, name, experiment_path
        self.searcher, self.scheduler = searcher, scheduler
        self.stopper, self.stop_all = stopper, stop_all
        self.resources_of, self.num_samples, self.max_concurrent = resources, num_samples, max_concurrent
        self.max_failures, self.fail_fast = max_failures, fail_fast
        self.ckpt_freq, self.ckpt_at_end, self.num_to_keep = checkpoint_frequency, checkpoint_at_end, num_to_keep
        self.time_budget_s, self.reporter = time_budget_s, reporter
        self.trial_name_creator = trial_name_creator
        self.is_class = isinstance(trainable, type)
        self.trainable_name = getattr(trainable, "__name__", type(trainable).__name__)
        self.trials: list[Trial] = []
        self._by_id: dict[str, Trial] = {}
        self._inflight: dict[Any, Trial] = {}
        self._searcher_done = False
        self._logger = TrialLogger()
        self._totals: dict[str, float] = {}
        self._totals_at = -1e9
        self._prefix = os.urandom(3).hex()[:5]
        self._failed_fast: str | None = None
        self._actor_cls: Any = None

    # --- trial creation -------------------------------------------------------------------------
    def _add_trials(self) -> None:
        eager = isinstance(self.searcher, BasicVariantGenerator)
        while not self._searcher_done:
            if len(self.trials) >= self.num_samples_cap():
                self._searcher_done = True
                return
            if not eager and any(t.status == PENDING for t in self.trials):
                return
            trial_id = f"{self._prefix}_{len(self.trials):05d}"
            config = self.searcher.suggest(trial_id)
            if config == Searcher.FINISHED:
                self._searcher_done = True
                return
            if config is None:
                return
            assert isinstance(config, dict)
            trial = Trial(trial_id, len(self.trials), self.trainable_name, config, self.resources_of(config))
            dirname = self.trial_name_creator(trial) if self.trial_name_creator else \
                f"{self.trainable_name}_{trial_id}"
            trial.path = os.path.join(self.path, dirname)
            self.trials.append(trial)
            self._by_id[trial_id] = trial
            self._logger.start(trial)
            self.scheduler.on_trial_add(trial_id, config)

    def num_samples_cap(self) -> int:
        return self.num_samples if not isinstance(self.searcher, BasicVariantGenerator) else 1 << 30

    # --- resources --------------------------------------------------------------------------------
    def _fits(self, trial: Trial) -> bool:
        now = time.monotonic()
        if now - self._totals_at > 1.0:
            self._totals = {k: float(v) for k, v in spindle.cluster_resources().items()}
            self._totals_at = now
        used: dict[str, float] = {}
        for t in self.trials:
            if t.status == RUNNING:
                for k, v in cluster_keys(t.resources).items():
                    used[k] = used.get(k, 0.0) + v
        need = cluster_keys(trial.resources)
        for key, amount in need.items():
            if amount > self._totals.get(key, 0.0):
                raise ValueError(f"a trial needs {amount:g} {key} but the whole cluster has "
                                 f"{self._totals.get(key, 0.0):g} {key}: lower resources_per_trial / tune.with_resources "
                                 "or add nodes")
        return all(used.get(k, 0.0) + v <= self._totals.get(k, 0.0) + 1e-9 for k, v in need.items())

    def _start_trials(self) -> None:
        while True:
            running = sum(t.status == RUNNING for t in self.trials)
            if self.max_concurrent and running >= self.max_concurrent:
                return
            self._add_trials()
            pending = [t.trial_id for t in self.trials if t.status == PENDING]
            paused = [t.trial_id for t in self.trials if t.status == PAUSED]
            chosen = self.scheduler.choose_trial_to_run(pending, paused)
            if chosen is None or not self._fits(self._by_id[chosen]):
                return
            self._launch(self._by_id[chosen])

    def _launch(self, trial: Trial) -> None:
        if self._actor_cls is None:
            from spindle.tune._actor import TrialActor
            self._actor_cls = spindle.remote(TrialActor)
        archive = None
        trial.iterations_since_restore = 0
        if trial.restore_from is not None:
            archive, trial.iteration, trial.time_total_s = trial.restore_from
        elif trial.checkpoint is not None:
            archive, trial.iteration = pack(trial.checkpoint.path), trial.checkpoint_iteration
            trial.time_total_s = trial.checkpoint_time_s
        else:
            trial.iteration, trial.time_total_s = 0, 0.0
        trial.restore_from = None
        info = {"trial_id": trial.trial_id, "trial_name": str(trial), "trial_dir": trial.path,
                "experiment_name": self.name, "iteration": trial.iteration}
        trial.actor = self._actor_cls.options(**option_resources(trial.resources)).remote(
            self.trainable, trial.config, archive, info)
        trial.status = RUNNING
        self._ask(trial)

    def _ask(self, trial: Trial) -> None:
        self._inflight[trial.actor.next_result.remote()] = trial

    # --- results ----------------------------------------------------------------------------------
    def _on_ready(self, ref: Any) -> None:
        trial = self._inflight.pop(ref)
        if trial.status != RUNNING:
            return
        try:
            out = spindle.get(ref)
        except Exception as exc:  # noqa: BLE001 - the worker died or the actor failed
            self._on_error(trial, f"{type(exc).__name__}: {exc}")
            return
        if out[0] == "error":
            self._on_error(trial, out[1])
        elif out[0] == "done":
            self._complete(trial)
        else:
            self._on_result(trial, out[1], out[2])

    def _on_result(self, trial: Trial, metrics: dict[str, Any], archive: bytes | None) -> None:
        trial.iteration += 1
        trial.iterations_since_restore += 1
        trial.time_total_s += float(metrics.get("time_this_iter_s", 0.0))
        result = {**metrics, "training_iteration": trial.iteration, "time_total_s": trial.time_total_s,
                  "timestamp": int(time.time()), "date": time.strftime("%Y-%m-%d_%H-%M-%S"),
                  "trial_id": trial.trial_id, "iterations_since_restore": trial.iterations_since_restore,
                  "done": bool(metrics.get("done", False)), "config": trial.config}
        if archive is not None:
            self._store_checkpoint(trial, archive)
        elif self.is_class and self.ckpt_freq and trial.iteration % self.ckpt_freq == 0:
            self._save(trial)
        trial.last_result = result
        trial.metric_history.append(result)
        self._logger.result(trial, result)
        self.searcher.on_trial_result(trial.trial_id, result)
        if result["done"] or (self.stopper is not None and self.stopper(trial.trial_id, result)):
            self._complete(trial)
            return
        decision = self.scheduler.on_trial_result(trial.trial_id, result)
        if decision == TrialScheduler.STOP:
            self._complete(trial)
        elif decision == TrialScheduler.PAUSE:
            self._pause(trial)
        elif isinstance(decision, Exploit):
            self._exploit(trial, decision)
        else:
            if decision == TrialScheduler.SAVE and self.is_class:
                self._save(trial)
            self._ask(trial)

    def _store_checkpoint(self, trial: Trial, archive: bytes) -> None:
        directory = os.path.join(trial.path, f"checkpoint_{trial.iteration:06d}")
        shutil.rmtree(directory, ignore_errors=True)
        trial.checkpoint = Checkpoint(unpack(archive, directory))
        trial.checkpoint_iteration, trial.checkpoint_time_s = trial.iteration, trial.time_total_s
        if trial.checkpoint not in trial.checkpoints:
            trial.checkpoints.append(trial.checkpoint)
        while self.num_to_keep and len(trial.checkpoints) > self.num_to_keep:
            shutil.rmtree(trial.checkpoints.pop(0).path, ignore_errors=True)

    def _save(self, trial: Trial) -> None:
        archive = spindle.get(trial.actor.save.remote(), timeout=300)
        if archive is not None:
            self._store_checkpoint(trial, archive)

    def _release(self, trial: Trial, graceful: bool) -> None:
        actor, trial.actor = trial.actor, None
        if actor is None:
            return
        if graceful and self.is_class:
            try:
                spindle.get(actor.stop.remote(), timeout=30)
            except Exception as exc:  # noqa: BLE001
                log.warning("trial %s: cleanup() failed: %s", trial, exc)
        try:
            spindle.kill(actor)
        except Exception as exc:  # noqa: BLE001 - already dead
            log.debug("trial %s: kill: %s", trial, exc)

    def _complete(self, trial: Trial) -> None:
        if self.is_class and self.ckpt_at_end and trial.actor is not None:
            self._save(trial)
        self._release(trial, graceful=True)
        trial.status = TERMINATED
        if trial.last_result:
            trial.last_result["done"] = True
        self.scheduler.on_trial_complete(trial.trial_id, trial.last_result or None)
        self.searcher.on_trial_complete(trial.trial_id, trial.last_result or None)

    def _pause(self, trial: Trial) -> None:
        if self.is_class:
            self._save(trial)
        self._release(trial, graceful=False)
        trial.status = PAUSED

    def _exploit(self, trial: Trial, decision: Exploit) -> None:
        source = self._by_id[decision.source]
        if source.checkpoint is None:
            log.warning("PBT: trial %s has no checkpoint to clone into %s; report checkpoints to use PBT",
                        source, trial)
            self._ask(trial)
            return
        archive = pack(source.checkpoint.path)
        self._release(trial, graceful=False)
        trial.config = dict(decision.config)
        trial.iteration, trial.time_total_s = source.checkpoint_iteration, source.checkpoint_time_s
        self._store_checkpoint(trial, archive)  # the clone is now this trial's own checkpoint
        self._logger.start(trial)
        self._launch(trial)

    def _on_error(self, trial: Trial, message: str) -> None:
        trial.num_failures += 1
        self._release(trial, graceful=False)
        self._logger.error(trial, message)
        if self.max_failures < 0 or trial.num_failures <= self.max_failures:
            log.warning("trial %s failed (%d of %s retries), restarting from %s", trial, trial.num_failures,
                        self.max_failures if self.max_failures >= 0 else "unlimited",
                        trial.checkpoint or "scratch")
            trial.status = PENDING
            return
        trial.status, trial.error_msg = ERROR, message
        self.scheduler.on_trial_remove(trial.trial_id)
        self.searcher.on_trial_complete(trial.trial_id, trial.last_result or None, error=True)
        if self.fail_fast:
            self._failed_fast = message

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> list[Trial]:
        start = time.monotonic()
        try:
            while True:
                for trial_id in self.scheduler.trials_to_stop():
                    stopped = self._by_id[trial_id]
                    if not stopped.is_finished():
                        self._complete(stopped)
                if self._failed_fast is not None or (self.stop_all is not None and self.stop_all()) or (
                        self.time_budget_s is not None and time.monotonic() - start > self.time_budget_s):
                    break
                self._start_trials()
                if not self._inflight:
                    if all(t.is_finished() for t in self.trials) and self._searcher_done:
                        break
                    if not any(t.status == RUNNING for t in self.trials):
                        waiting = [t for t in self.trials if not t.is_finished()]
                        if not waiting and not self._searcher_done:
                            time.sleep(0.05)
                            continue
                        time.sleep(0.2)  # resources held elsewhere in the cluster; retry
                        continue
                ready, _ = spindle.wait(list(self._inflight), num_returns=1, timeout=0.5)
                for ref in ready:
                    self._on_ready(ref)
                self.reporter.update(self.trials)
        finally:
            for trial in self.trials:
                if trial.actor is not None:
                    self._release(trial, graceful=False)
                    if trial.status == RUNNING:
                        trial.status = TERMINATED
        self.reporter.final(self.trials, time.monotonic() - start)
        if self._failed_fast is not None and self.fail_fast == "raise":
            raise TuneError(f"a trial failed and fail_fast='raise':\n{self._failed_fast}")
        return self.trials
