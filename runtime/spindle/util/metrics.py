"""``spindle.util.metrics``: Ray's application metrics (Counter, Gauge, Histogram), recorded in any
driver, task or actor and exported on the head's Prometheus endpoint (``/metrics`` on the metrics port).

Same API and checks as ``ray.util.metrics``: ``tag_keys`` a tuple of str, ``set_default_tags`` returns
the metric, every tag key needs a value (default or per call), ``Counter.inc`` takes a value > 0,
``Histogram`` needs positive ``boundaries``, a name Prometheus can't take is warned about and dropped.
Values are kept in the recording process and reported to the head about every second
(``spindle._core.metrics_report``); the head sums counters and histograms over processes and exports
each metric under Ray's exported name ``ray_<name>`` so Ray's dashboards and alerts keep working.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from spindle._core import metrics_report

_VALID_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _discard(name: str) -> bool:
    if not name:
        raise ValueError("Empty name is not allowed. Please provide a metric name.")
    if not _VALID_NAME.match(name):
        warnings.warn(f"Invalid metric name: {name}. Metric will be discarded and data will not be collected or "
                      "published. Metric names can only contain letters, numbers, _, and :. Metric names cannot "
                      "start with numbers.", UserWarning, stacklevel=3)
        return True
    return False


class Metric:
    """The parent class of Counter, Gauge and Histogram."""

    _kind = ""

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None):
        self._discard_metric = _discard(name)
        self._name = name
        self._description = description
        self._default_tags: dict[str, str] = {}
        self._tag_keys: tuple[str, ...] = tag_keys or tuple()
        if not isinstance(self._tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(self._tag_keys)}")
        for key in self._tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")

    def set_default_tags(self, default_tags: dict[str, str]) -> Metric:
        for key, val in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(val, str):
                raise TypeError(f"Tag values must be str, got {type(val)}.")
        self._default_tags = dict(default_tags)
        return self

    def _final_tags(self, tags: dict[str, str] | None) -> dict[str, str]:
        if not tags:
            final = self._default_tags
        else:
            for val in tags.values():
                if not isinstance(val, str):
                    raise TypeError(f"Tag values must be str, got {type(val)}.")
            final = {**self._default_tags, **tags}
        missing = [k for k in self._tag_keys if k not in final]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.")
        return final

    def _record(self, value: float, tags: dict[str, str] | None, boundaries: tuple[float, ...] = ()) -> None:
        if self._discard_metric:
            return
        final = self._final_tags(tags)
        key = tuple((k, final[k]) for k in sorted(final) if k in self._tag_keys)
        metrics_report.record(self._kind, self._name, self._description, key, float(value), boundaries)

    @property
    def info(self) -> dict[str, Any]:
        return {"name": self._name, "description": self._description, "tag_keys": self._tag_keys,
                "default_tags": self._default_tags}


def _rebuild(cls: type[Metric], args: tuple[Any, ...], default_tags: dict[str, str]) -> Metric:
    """Unpickle a metric with its default tags (Ray drops them when a metric is sent to a task; keeping them
    is what a user who set them expects)."""
    return cls(*args).set_default_tags(default_tags)


def _check_value(value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"value must be int or float, got {type(value)}.")


class Counter(Metric):
    """A cumulative count that only goes up (exported as a Prometheus counter)."""

    _kind = "counter"

    def __reduce__(self) -> Any:
        return _rebuild, (Counter, (self._name, self._description, self._tag_keys), self._default_tags)

    def inc(self, value: int | float = 1.0, tags: dict[str, str] | None = None) -> None:
        _check_value(value)
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        self._record(value, tags)


class Gauge(Metric):
    """The current value of something (exported as a Prometheus gauge; the latest set wins)."""

    _kind = "gauge"

    def __reduce__(self) -> Any:
        return _rebuild, (Gauge, (self._name, self._description, self._tag_keys), self._default_tags)

    def set(self, value: int | float | None, tags: dict[str, str] | None = None) -> None:
        if value is None:
            return
        _check_value(value)
        self._record(value, tags)


class Histogram(Metric):
    """Observations counted in buckets with the given upper ``boundaries`` (a Prometheus histogram)."""

    _kind = "histogram"

    def __init__(self, name: str, description: str = "", boundaries: list[float] | None = None,
                 tag_keys: tuple[str, ...] | None = None):
        super().__init__(name, description, tag_keys)
        if not boundaries:
            raise ValueError('boundaries argument should be provided when using the Histogram class. e.g., '
                             'Histogram("name", boundaries=[1.0, 2.0])')
        for i, boundary in enumerate(boundaries):
            if boundary <= 0:
                raise ValueError(f"Invalid `boundaries` argument at index {i}, {boundaries}. Use positive values "
                                 "for the arguments.")
        self.boundaries = list(boundaries)

    def __reduce__(self) -> Any:
        return _rebuild, (Histogram, (self._name, self._description, self.boundaries, self._tag_keys),
                          self._default_tags)

    def observe(self, value: int | float, tags: dict[str, str] | None = None) -> None:
        _check_value(value)
        self._record(value, tags, tuple(sorted(self.boundaries)))

    @property
    def info(self) -> dict[str, Any]:
        return {**super().info, "boundaries": self.boundaries}


__all__ = ["Counter", "Gauge", "Histogram", "Metric"]
