"""Workload code, written once against Ray's API.

Each workload is ``fn(ctx) -> {metric: value}``; ``ctx.ray`` is either ``ray`` or ``spindle`` and the code
must not tell them apart. Everything here runs inside the measured interpreter (started by
``bench.worker``), so it may only use the standard library, numpy and psutil besides the module under test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # actors of the scale runs import this package after their fork: it stays small
    from bench.spec import Sizes

Result = dict[str, float | bool]


@dataclass
class Context:
    ray: ModuleType
    impl: str
    sizes: Sizes
    init_kwargs: dict[str, Any]

    def init(self) -> None:
        self.ray.init(**self.init_kwargs)


Workload = Callable[[Context], Result]
REGISTRY: dict[str, Workload] = {}
NEEDS_OWN_INIT: set[str] = set()


def workload(name: str, own_init: bool = False) -> Callable[[Workload], Workload]:
    """Register ``fn`` under ``name``; ``own_init`` workloads call ``ctx.init()`` themselves (to time it)."""

    def register(fn: Workload) -> Workload:
        REGISTRY[name] = fn
        if own_init:
            NEEDS_OWN_INIT.add(name)
        return fn

    return register
