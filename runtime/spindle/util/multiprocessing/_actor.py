"""The process behind each of a Pool's "processes": an actor that runs chunks of work.

Each item's outcome is returned separately (a value or a `_Failure`), so one bad item fails only
that item: ``map`` raises it, ``imap`` raises it at its position after yielding the ones before.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle

import spindle


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a pool process (as multiprocessing attaches it)."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class _Failure:
    """An item's exception, carried back to the caller and re-raised there with its type kept."""

    def __init__(self, exc: BaseException, tb: str):
        try:
            cloudpickle.dumps(exc)
        except Exception:  # an exception that cannot travel: keep its type name and message
            exc = RuntimeError(f"{type(exc).__qualname__}: {exc} (the original exception could not be pickled)")
        self.exc = exc
        self.tb = tb

    def reraise(self) -> None:
        raise self.exc from RemoteTraceback(self.tb)


class _PoolActor:
    def __init__(self, initializer: Callable[..., Any] | None, initargs: Sequence[Any]):
        if initializer is not None:
            initializer(*initargs)

    def ping(self) -> bool:
        return True

    def run_chunk(self, func: Callable[..., Any], chunk: Sequence[Any], star: bool) -> list[Any]:
        out: list[Any] = []
        for item in chunk:
            try:
                out.append(func(*item) if star else func(item))
            except Exception as e:
                out.append(_Failure(e, traceback.format_exc()))
        return out


PoolActor: Any = spindle.remote(_PoolActor)
