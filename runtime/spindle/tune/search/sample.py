"""Search-space primitives (`tune.uniform`, `tune.choice`, `tune.grid_search`, ...).

A config value is either a constant, a :class:`Domain` (sampled once per trial from a seeded RNG), a
``{"grid_search": [...]}`` dict (expanded into one variant per value) or :func:`sample_from` (a
function of the partially resolved config). Kept free of any runtime import so that the searchers and
schedulers using them stay pure and unit-testable.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any


class Domain:
    """A distribution a parameter is sampled from; ``sample`` takes the trial's RNG."""

    def sample(self, rng: random.Random | None = None, spec: Any = None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def _quantize(value: float, q: float | None) -> float:
    return value if q is None else round(value / q) * q


class Float(Domain):
    def __init__(self, lower: float, upper: float, *, log: bool = False, q: float | None = None,
                 base: float = 10.0, normal: tuple[float, float] | None = None) -> None:
        if normal is None and not lower < upper:
            raise ValueError(f"the lower bound {lower} must be below the upper bound {upper}")
        if log and lower <= 0:
            raise ValueError(f"loguniform needs a positive lower bound, got {lower}")
        self.lower, self.upper, self.log, self.q, self.base, self.normal = lower, upper, log, q, base, normal

    def sample(self, rng: random.Random | None = None, spec: Any = None) -> float:
        rng = rng or random.Random()
        if self.normal is not None:
            value = rng.gauss(*self.normal)
        elif self.log:
            lo, hi = math.log(self.lower, self.base), math.log(self.upper, self.base)
            value = self.base ** rng.uniform(lo, hi)
        else:
            value = rng.uniform(self.lower, self.upper)
        if self.q is not None:
            value = _quantize(value, self.q)
            if self.normal is None:
                value = min(max(value, self.lower), self.upper)
        return float(value)


class Integer(Domain):
    """Integers in [lower, upper) like Ray's ``randint`` (upper excluded)."""

    def __init__(self, lower: int, upper: int, *, log: bool = False, q: int | None = None) -> None:
        if not lower < upper:
            raise ValueError(f"randint needs lower < upper, got [{lower}, {upper})")
        self.lower, self.upper, self.log, self.q = lower, upper, log, q

    def sample(self, rng: random.Random | None = None, spec: Any = None) -> int:
        rng = rng or random.Random()
        if self.log:
            value = int(math.exp(rng.uniform(math.log(self.lower), math.log(self.upper))))
        else:
            value = rng.randrange(self.lower, self.upper)
        if self.q is not None:
            value = int(round(value / self.q) * self.q)
        return min(max(value, self.lower), self.upper - 1 if self.q is None else self.upper)


class Categorical(Domain):
    def __init__(self, categories: Sequence[Any]) -> None:
        if len(categories) == 0:
            raise ValueError("tune.choice needs at least one category")
        self.categories = list(categories)

    def sample(self, rng: random.Random | None = None, spec: Any = None) -> Any:
        return (rng or random.Random()).choice(self.categories)

    def __iter__(self) -> Any:
        return iter(self.categories)

    def __len__(self) -> int:
        return len(self.categories)

    def index(self, value: Any) -> int:
        return self.categories.index(value)

    def __getitem__(self, i: int) -> Any:
        return self.categories[i]


class Function(Domain):
    """``tune.sample_from(lambda spec: ...)``: ``spec.config`` is the config resolved so far."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def sample(self, rng: random.Random | None = None, spec: Any = None) -> Any:
        try:
            return self.func(spec)
        except TypeError as exc:
            if "positional argument" not in str(exc):
                raise
            return self.func()


def uniform(lower: float, upper: float) -> Float:
    return Float(lower, upper)


def quniform(lower: float, upper: float, q: float) -> Float:
    return Float(lower, upper, q=q)


def loguniform(lower: float, upper: float, base: float = 10.0) -> Float:
    return Float(lower, upper, log=True, base=base)


def qloguniform(lower: float, upper: float, q: float, base: float = 10.0) -> Float:
    return Float(lower, upper, log=True, q=q, base=base)


def randn(mean: float = 0.0, sd: float = 1.0) -> Float:
    return Float(0.0, 0.0, normal=(mean, sd))


def randint(lower: int, upper: int) -> Integer:
    return Integer(lower, upper)


def qrandint(lower: int, upper: int, q: int = 1) -> Integer:
    return Integer(lower, upper, q=q)


def lograndint(lower: int, upper: int) -> Integer:
    return Integer(lower, upper, log=True)


def choice(categories: Sequence[Any]) -> Categorical:
    return Categorical(categories)


def sample_from(func: Callable[..., Any]) -> Function:
    return Function(func)


def grid_search(values: Sequence[Any]) -> dict[str, list[Any]]:
    if len(values) == 0:
        raise ValueError("tune.grid_search needs at least one value")
    return {"grid_search": list(values)}
