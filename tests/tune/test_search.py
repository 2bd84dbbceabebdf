"""Search spaces: sampling within bounds, seeds, grid expansion order, nested dicts, sample_from."""

from __future__ import annotations

import random

import pytest

from spindle import tune
from spindle.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher
from spindle.tune.search.variant_generator import count_variants, generate_variants


def test_each_domain_samples_within_its_bounds() -> None:
    rng = random.Random(0)
    for _ in range(200):
        assert 0 <= tune.uniform(0, 1).sample(rng) <= 1
        assert 1e-4 <= tune.loguniform(1e-4, 1e-1).sample(rng) <= 1e-1
        assert tune.quniform(0, 1, 0.25).sample(rng) in (0, 0.25, 0.5, 0.75, 1.0)
        assert tune.randint(3, 6).sample(rng) in (3, 4, 5)
        assert tune.qrandint(0, 10, 5).sample(rng) in (0, 5, 10)
        assert tune.choice(["x", "y"]).sample(rng) in ("x", "y")
        assert 1 <= tune.lograndint(1, 100).sample(rng) < 100


def test_bad_bounds_are_rejected_with_the_reason() -> None:
    with pytest.raises(ValueError, match="lower bound"):
        tune.uniform(1, 0)
    with pytest.raises(ValueError, match="positive"):
        tune.loguniform(0, 1)
    with pytest.raises(ValueError, match="at least one"):
        tune.choice([])


def test_grid_expands_with_the_first_key_varying_fastest() -> None:
    space = {"a": tune.grid_search([1, 2]), "b": tune.grid_search(["x", "y"]), "c": 7}
    assert list(generate_variants(space, 1)) == [
        {"a": 1, "b": "x", "c": 7}, {"a": 2, "b": "x", "c": 7}, {"a": 1, "b": "y", "c": 7}, {"a": 2, "b": "y", "c": 7}]


def test_num_samples_repeats_the_grid_and_resamples_random_values() -> None:
    space = {"a": tune.grid_search([1, 2]), "lr": tune.uniform(0, 1)}
    configs = list(generate_variants(space, 3, seed=42))
    assert count_variants(space, 3) == len(configs) == 6
    assert [c["a"] for c in configs] == [1, 2, 1, 2, 1, 2]
    assert len({c["lr"] for c in configs}) == 6


def test_the_same_seed_gives_the_same_configs_and_another_seed_others() -> None:
    space = {"lr": tune.loguniform(1e-4, 1), "layers": tune.randint(1, 9), "act": tune.choice(["relu", "tanh"])}
    assert list(generate_variants(space, 5, seed=7)) == list(generate_variants(space, 5, seed=7))
    assert list(generate_variants(space, 5, seed=7)) != list(generate_variants(space, 5, seed=8))


def test_nested_dicts_and_sample_from_see_the_resolved_config() -> None:
    space = {"model": {"width": tune.grid_search([8, 16]), "depth": 2},
             "double": tune.sample_from(lambda spec: spec.config["model"]["width"] * 2),
             "const": tune.sample_from(lambda: 5)}
    configs = list(generate_variants(space, 1))
    assert configs == [{"model": {"width": 8, "depth": 2}, "double": 16, "const": 5},
                       {"model": {"width": 16, "depth": 2}, "double": 32, "const": 5}]


def test_basic_variant_generator_suggests_points_first_then_finishes() -> None:
    gen = BasicVariantGenerator(points_to_evaluate=[{"a": 100}], random_state=1)
    gen.set_search_properties("score", "max", {"a": tune.grid_search([1, 2])}, 1)
    assert [gen.suggest(str(i)) for i in range(4)] == [{"a": 100}, {"a": 1}, {"a": 2}, Searcher.FINISHED]


def test_concurrency_limiter_holds_suggestions_until_a_trial_completes() -> None:
    gen = BasicVariantGenerator()
    gen.set_search_properties(None, None, {"a": tune.grid_search([1, 2, 3])}, 1)
    limited = ConcurrencyLimiter(gen, max_concurrent=2)
    assert limited.suggest("0") == {"a": 1}
    assert limited.suggest("1") == {"a": 2}
    assert limited.suggest("2") is None
    limited.on_trial_complete("0", {"score": 1})
    assert limited.suggest("2") == {"a": 3}


def test_optuna_search_samples_the_space_and_learns_from_results() -> None:
    from spindle.tune.search.optuna import OptunaSearch

    search = OptunaSearch(metric="loss", mode="min", seed=3)
    search.set_search_properties(None, None, {"x": tune.uniform(-5, 5), "k": tune.choice([1, 2]), "c": 1}, 20)
    best = float("inf")
    for i in range(20):
        config = search.suggest(str(i))
        assert isinstance(config, dict) and -5 <= config["x"] <= 5 and config["k"] in (1, 2) and config["c"] == 1
        loss = (config["x"] - 2) ** 2
        best = min(best, loss)
        search.on_trial_result(str(i), {"loss": loss, "training_iteration": 1})
        search.on_trial_complete(str(i), {"loss": loss})
    assert best < 0.5
    assert len(search._study.trials) == 20
    with pytest.raises(ValueError, match="grid_search"):
        OptunaSearch(metric="loss", mode="min").set_search_properties(None, None, {"x": tune.grid_search([1])})
