"""Each scheduler's decisions, fed results by hand: pure state machines with exact expectations
(the "clock" is the time_attr in the results)."""

from __future__ import annotations

import random

import pytest

from spindle.tune.schedulers import (
    ASHAScheduler,
    Exploit,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
    TrialScheduler,
)
from spindle.tune.schedulers.async_hyperband import percentile
from spindle.tune.schedulers.pbt import explore

C, S, P = TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.PAUSE


def r(it: int, score: float) -> dict[str, float]:
    return {"training_iteration": it, "score": score}


def test_fifo_runs_every_trial_in_order_and_never_stops_one() -> None:
    fifo = FIFOScheduler()
    assert fifo.on_trial_result("a", r(1, 0)) == C
    assert fifo.choose_trial_to_run(["b", "c"], []) == "b"


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([10, 5], 75) == 8.75
    assert percentile([5, 10, 20], 75) == 15
    assert percentile([3.0], 75) == 3.0


def test_asha_rungs_follow_grace_period_and_reduction_factor() -> None:
    asha = ASHAScheduler(metric="score", mode="max", max_t=100, grace_period=1, reduction_factor=4)
    assert [m for m, _ in asha.rungs()[0]] == [64, 16, 4, 1]


def test_asha_stops_a_trial_below_the_rung_percentile_and_keeps_the_rest() -> None:
    asha = ASHAScheduler(metric="score", mode="max", max_t=16, grace_period=1, reduction_factor=4)
    for t in "abcd":
        asha.on_trial_add(t, {})
    assert asha.on_trial_result("a", r(1, 10)) == C  # first at the rung: nothing to compare with
    assert asha.on_trial_result("b", r(1, 5)) == S  # cutoff = 75th percentile of [10] = 10
    assert asha.on_trial_result("c", r(1, 20)) == C  # cutoff of [10, 5] = 8.75
    assert asha.on_trial_result("d", r(1, 9)) == S  # cutoff of [10, 5, 20] = 15
    assert asha.on_trial_result("a", r(2, 1)) == C  # between rungs: no decision
    assert asha.on_trial_result("a", r(4, 1)) == C  # first at rung 4
    assert asha.on_trial_result("c", r(4, 0)) == S  # below a's 1 at rung 4
    assert asha.on_trial_result("a", r(16, 1)) == S  # max_t reached
    assert asha.num_stopped == 4


def test_asha_in_min_mode_stops_the_larger_values() -> None:
    asha = ASHAScheduler(metric="loss", mode="min", max_t=16, grace_period=1, reduction_factor=4)
    asha.on_trial_add("a", {})
    asha.on_trial_add("b", {})
    assert asha.on_trial_result("a", {"training_iteration": 1, "loss": 1.0}) == C
    assert asha.on_trial_result("b", {"training_iteration": 1, "loss": 2.0}) == S


def test_asha_ignores_results_without_the_metric_and_rejects_bad_settings() -> None:
    asha = ASHAScheduler(metric="score", mode="max")
    asha.on_trial_add("a", {})
    assert asha.on_trial_result("a", {"training_iteration": 1}) == C
    with pytest.raises(ValueError, match="grace_period"):
        ASHAScheduler(metric="score", mode="max", grace_period=200, max_t=100)
    with pytest.raises(ValueError, match="metric and mode"):
        ASHAScheduler().on_trial_add("a", {})


def test_hyperband_fills_brackets_pauses_at_the_milestone_and_halves() -> None:
    hb = HyperBandScheduler(metric="score", mode="max", max_t=9, reduction_factor=3)
    trials = [f"t{i}" for i in range(8)]
    for t in trials:
        hb.on_trial_add(t, {})
    # Bracket s=0 holds 3 trials run straight to max_t = 9.
    assert hb.on_trial_result("t0", r(3, 1)) == C
    assert hb.on_trial_result("t0", r(9, 1)) == S
    # Bracket s=1 holds 5 trials with a first milestone at 3: the first four pause there.
    scores = {"t3": 1, "t4": 5, "t5": 3, "t6": 4, "t7": 2}
    assert hb.on_trial_result("t3", r(2, 0)) == C
    for t in ["t3", "t4", "t5", "t6"]:
        assert hb.on_trial_result(t, r(3, scores[t])) == P
    assert hb.choose_trial_to_run([], ["t3", "t4", "t5", "t6"]) is None  # nobody resumes before the round ends
    # The last one ends the round: keep ceil(5/3) = 2 (t4, t6), stop the others.
    assert hb.on_trial_result("t7", r(3, scores["t7"])) == S
    assert sorted(hb.trials_to_stop()) == ["t3", "t5"]
    assert hb.trials_to_stop() == []
    assert hb.choose_trial_to_run(["t1"], ["t4", "t6"]) == "t4"
    assert hb.on_trial_result("t4", r(9, 7)) == S  # the next milestone is max_t


def test_hyperband_treats_a_finished_trial_as_leaving_its_bracket() -> None:
    hb = HyperBandScheduler(metric="score", mode="max", max_t=9, reduction_factor=3)
    for i in range(8):
        hb.on_trial_add(f"t{i}", {})
    for t in ["t3", "t4", "t5", "t6"]:
        assert hb.on_trial_result(t, r(3, int(t[1]))) == P
    hb.on_trial_remove("t7")  # errored before the milestone: the round is now complete
    assert sorted(hb.trials_to_stop()) == ["t3", "t4"]
    assert hb.choose_trial_to_run([], ["t5", "t6"]) == "t5"


def test_median_stopping_compares_best_result_with_the_median_of_running_means() -> None:
    msr = MedianStoppingRule(time_attr="training_iteration", metric="score", mode="max", grace_period=1,
                             min_samples_required=2)
    for t in "abc":
        msr.on_trial_add(t, {})
    for it in (1, 2, 3):
        assert msr.on_trial_result("a", r(it, 10)) == C
    assert msr.on_trial_result("b", r(1, 8)) == C
    assert msr.on_trial_result("b", r(2, 8)) == C  # only one other trial has reached time 2
    assert msr.on_trial_result("b", r(3, 8)) == C
    assert msr.on_trial_result("c", r(1, 1)) == C  # within the grace period
    assert msr.on_trial_result("c", r(2, 2)) == S  # best 2 < median(10, 8) = 9
    assert msr.on_trial_result("c", r(3, 100)) == S  # stays stopped


def test_median_stopping_needs_min_samples_before_stopping() -> None:
    msr = MedianStoppingRule(time_attr="training_iteration", metric="score", mode="min", grace_period=0,
                             min_samples_required=3)
    for t in "ab":
        msr.on_trial_add(t, {})
    assert msr.on_trial_result("a", r(5, 0.0)) == C
    assert msr.on_trial_result("b", r(5, 99.0)) == C


def _pbt(**kw: object) -> PopulationBasedTraining:
    return PopulationBasedTraining(time_attr="training_iteration", metric="score", mode="max",
                                   perturbation_interval=2, hyperparam_mutations={"lr": [0.1, 0.2, 0.3, 0.4]},
                                   seed=0, **kw)  # type: ignore[arg-type]


def test_pbt_checkpoints_the_top_quantile_and_clones_it_into_the_bottom() -> None:
    pbt = _pbt()
    for i, t in enumerate(["t0", "t1", "t2", "t3"]):
        pbt.on_trial_add(t, {"lr": [0.1, 0.2, 0.3, 0.4][i]})
    assert pbt.on_trial_result("t0", r(1, 1)) == C  # before the perturbation interval
    assert pbt.on_trial_result("t0", r(2, 1)) == C  # alone: no quantiles yet
    assert pbt.on_trial_result("t1", r(2, 2)) == TrialScheduler.SAVE  # top of [t0, t1]
    assert pbt.on_trial_result("t2", r(2, 3)) == TrialScheduler.SAVE
    assert pbt.on_trial_result("t3", r(2, 4)) == TrialScheduler.SAVE
    decision = pbt.on_trial_result("t0", r(4, 1))
    assert isinstance(decision, Exploit)
    assert decision.source == "t3"  # the only trial in the top quarter of four
    assert decision.config["lr"] in (0.3, 0.4)  # a neighbour of 0.4 in the list, or 0.4 itself at the edge
    assert pbt.exploits == [("t0", "t3", decision.config)]
    assert pbt.on_trial_result("t0", r(5, 1)) == C  # the interval restarts after a perturbation


def test_pbt_is_reproducible_with_a_seed() -> None:
    def run() -> list[object]:
        pbt = _pbt(resample_probability=0.5)
        out = []
        for t in ["a", "b", "c", "d"]:
            pbt.on_trial_add(t, {"lr": 0.2})
        for it in (2, 4, 6):
            out.extend(pbt.on_trial_result(t, r(it, s)) for t, s in zip("abcd", (1, 2, 3, 4), strict=True))
        return out
    assert run() == run()


def test_explore_perturbs_numbers_by_the_factors_or_resamples_them() -> None:
    from spindle import tune

    rng = random.Random(1)
    for _ in range(20):
        scaled = explore({"lr": 1.0}, {"lr": tune.uniform(0, 10)}, 0.0, (1.2, 0.8), rng)
        assert scaled["lr"] in (1.2, 0.8)
        resampled = explore({"lr": 1.0}, {"lr": tune.uniform(5, 10)}, 1.0, (1.2, 0.8), rng)
        assert 5 <= resampled["lr"] <= 10
    assert explore({"n": 10}, {"n": tune.randint(1, 100)}, 0.0, (1.2, 0.8), rng)["n"] in (12, 8)
    assert explore({"lr": 9}, {"lr": [1, 2]}, 0.0, (1.2, 0.8), rng)["lr"] in (1, 2)  # not in the list: resample
    with pytest.raises(ValueError, match="needs hyperparam_mutations"):
        PopulationBasedTraining(metric="score", mode="max")
    with pytest.raises(ValueError, match="synch=False"):
        PopulationBasedTraining(metric="score", mode="max", hyperparam_mutations={"lr": [1, 2]}, synch=True)
