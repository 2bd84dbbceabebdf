"""Turning a param space into concrete configs: grid expansion, then sampling, as Ray does.

Pure functions: a spec plus a seeded RNG always gives the same configs in the same order. Grids
expand with the first grid key varying fastest (Ray's order); ``num_samples`` repeats the whole grid,
resampling the random values each time; ``sample_from`` functions run last and see the rest of the
config through ``spec.config``.
"""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from spindle.tune.search.sample import Domain, Function

Path = tuple[Any, ...]


def _walk(spec: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every leaf of nested dicts/lists with its path; grid dicts and domains are leaves."""
    if isinstance(spec, dict) and not is_grid(spec):
        for key, value in spec.items():
            yield from _walk(value, (*path, key))
    elif isinstance(spec, list):
        for i, value in enumerate(spec):
            yield from _walk(value, (*path, i))
    else:
        yield path, spec


def is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid_search"}


def _set(config: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        config = config[key]
    config[path[-1]] = value


def grid_variants(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """One spec per grid combination (first grid key fastest); domains are left unresolved."""
    grids = [(path, value["grid_search"]) for path, value in _walk(spec) if is_grid(value)]
    if not grids:
        return [copy.deepcopy(spec)]
    out = []
    for combo in itertools.product(*(values for _, values in reversed(grids))):
        variant = copy.deepcopy(spec)
        for (path, _), value in zip(reversed(grids), combo, strict=True):
            _set(variant, path, copy.deepcopy(value))
        out.append(variant)
    return out


def resolve(spec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Sample every domain of a grid-free spec; ``sample_from`` after the others, in key order."""
    config = copy.deepcopy(spec)
    leaves = list(_walk(config))
    for path, value in leaves:
        if isinstance(value, Domain) and not isinstance(value, Function):
            _set(config, path, value.sample(rng))
    for path, value in leaves:
        if isinstance(value, Function):
            _set(config, path, value.sample(rng, SimpleNamespace(config=config)))
    return config


def generate_variants(spec: dict[str, Any], num_samples: int, seed: int | None = None) -> Iterator[dict[str, Any]]:
    """``num_samples`` rounds of the grid, each variant resolved with one shared seeded RNG."""
    rng = random.Random(seed)
    for _ in range(num_samples):
        for variant in grid_variants(spec):
            yield resolve(variant, rng)


def count_variants(spec: dict[str, Any], num_samples: int) -> int:
    return len(grid_variants(spec)) * num_samples


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}`` (the keys shown in tables and CSV files)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat
