"""Search algorithms: where each new trial's config comes from.

:class:`Searcher` is Ray's interface (``suggest`` / ``on_trial_result`` / ``on_trial_complete``);
:class:`BasicVariantGenerator` is the default random + grid search, reproducible with
``random_state``. A searcher suggests up to ``num_samples`` configs and returns None while it wants
to wait (e.g. a concurrency limit) rather than blocking the runner.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from spindle.tune.search.variant_generator import generate_variants


class Searcher:
    FINISHED = "FINISHED"

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        self._metric, self._mode = metric, mode

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def mode(self) -> str | None:
        return self._mode

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              num_samples: int = 1) -> bool:
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        raise NotImplementedError

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        pass


class BasicVariantGenerator(Searcher):
    """Grid + random search; ``random_state`` (an int) makes the sampled configs reproducible."""

    def __init__(self, points_to_evaluate: list[dict[str, Any]] | None = None, max_concurrent: int = 0,
                 random_state: int | None = None, constant_grid_search: bool = False) -> None:
        super().__init__()
        self._points = list(points_to_evaluate or [])
        self.max_concurrent = max_concurrent
        self._seed = random_state
        self._variants: Iterator[dict[str, Any]] | None = None
        self._live: set[str] = set()

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              num_samples: int = 1) -> bool:
        super().set_search_properties(metric, mode, config, num_samples)
        self._variants = generate_variants(config, num_samples, self._seed)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._variants is None:
            raise RuntimeError("set_search_properties() must be called before suggest()")
        if self.max_concurrent and len(self._live) >= self.max_concurrent:
            return None
        if self._points:
            config = self._points.pop(0)
        else:
            config = next(self._variants, None)  # type: ignore[arg-type]
            if config is None:
                return Searcher.FINISHED
        self._live.add(trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._live.discard(trial_id)


class ConcurrencyLimiter(Searcher):
    """At most ``max_concurrent`` suggested trials unfinished at once (Ray's wrapper)."""

    def __init__(self, searcher: Searcher, max_concurrent: int) -> None:
        super().__init__(searcher.metric, searcher.mode)
        self.searcher, self.max_concurrent = searcher, max_concurrent
        self._live: set[str] = set()

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              num_samples: int = 1) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, num_samples)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if len(self._live) >= self.max_concurrent:
            return None
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self._live.add(trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._live.discard(trial_id)
        self.searcher.on_trial_complete(trial_id, result, error)
