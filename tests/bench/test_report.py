"""The summary is oriented so that a ratio above 1 always means Spindle did better."""

from __future__ import annotations

from bench.report import Run, ratio, summarize, table
from bench.spec import Better


def _run(impl: str, metrics: dict[str, float | bool], ok: bool = True) -> Run:
    return Run("w", impl, 0, ok, 1.0, 100.0, metrics)


def test_throughput_ratio_is_spindle_over_ray() -> None:
    assert ratio(Better.HIGHER, 300.0, 100.0) == 3.0


def test_time_and_memory_ratio_is_ray_over_spindle() -> None:
    assert ratio(Better.LOWER, 2.0, 8.0) == 4.0


def test_booleans_and_missing_values_get_no_ratio() -> None:
    assert ratio(Better.BOOL, True, True) is None
    assert ratio(Better.HIGHER, 1.0, None) is None


def test_summary_takes_medians_and_ignores_failed_runs() -> None:
    runs = [
        _run("spindle", {"init_seconds": 1.0}),
        _run("spindle", {"init_seconds": 3.0}),
        _run("spindle", {"init_seconds": 2.0}),
        _run("spindle", {"init_seconds": 99.0}, ok=False),
        _run("ray", {"init_seconds": 8.0}),
    ]
    (row,) = summarize(runs, ["init_seconds"])
    assert (row.spindle, row.ray, row.ratio, row.spindle_n) == (2.0, 8.0, 4.0, 3)


def test_zero_copy_holds_only_if_it_held_in_every_run() -> None:
    runs = [_run("spindle", {"get_100mib_zero_copy": True}), _run("spindle", {"get_100mib_zero_copy": False})]
    (row,) = summarize(runs, ["get_100mib_zero_copy"])
    assert row.spindle is False and row.ratio is None


def test_table_header_says_which_way_the_ratio_points() -> None:
    rows = summarize([_run("spindle", {"init_seconds": 1.0}), _run("ray", {"init_seconds": 5.0})], ["init_seconds"])
    text = table(rows)
    assert ">1 = Spindle better" in text and "5.00x" in text
    assert table(rows, markdown=True).startswith("| metric |")
