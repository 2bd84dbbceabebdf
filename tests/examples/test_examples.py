"""Every program in examples/ runs as a user would run it, with small inputs, and prints the right
answer. Examples are documentation that executes: if one breaks, the docs are wrong."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.examples._run import EXAMPLES, grab, run_example


def primes_between(start: int, end: int) -> int:
    """Primes in [start, end) by a segmented sieve of Eratosthenes (independent of the example)."""
    limit = math.isqrt(end) + 1
    base = bytearray([1]) * limit
    base[:2] = b"\0\0"
    for i in range(2, math.isqrt(limit) + 1):
        if base[i]:
            base[i * i :: i] = bytes(len(base[i * i :: i]))
    segment = bytearray([1]) * (end - start)
    for p in (i for i in range(limit) if base[i]):
        first = max(p * p, (start + p - 1) // p * p)
        segment[first - start :: p] = bytes(len(segment[first - start :: p]))
    for n in range(start, min(2, end)):
        segment[n - start] = 0
    return sum(segment)


def test_the_sieve_used_to_check_primes_is_right() -> None:
    assert primes_between(0, 100) == 25
    assert primes_between(10_000_000, 12_000_000) == 123_481


def test_primes_counts_the_primes_of_a_small_range_in_chunks() -> None:
    start, end = 10_000_000, 10_050_000
    out = run_example("primes.py", "--start", str(start), "--end", str(end), "--chunk-size", "7000")
    assert int(grab(r"Primes between [\d,]+ and [\d,]+: (\d+)", out)) == primes_between(start, end)
    assert grab(r"Tasks: (\d+)", out) == "8"
    assert float(grab(r"elapsed: ([\d.]+) s", out)) > 0


def test_calculate_square_runs_a_thousand_tiny_tasks() -> None:
    n = 1000
    out = run_example("calculate_square.py", "--n", str(n))
    assert grab(r"Tasks: (\d+)", out) == str(n)
    assert int(grab(r"sum of squares: (\d+)", out)) == sum(i * i for i in range(n))
    assert "First squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in out


def test_fibonacci_gives_the_same_number_locally_and_remotely() -> None:
    size = 5000
    out = run_example("fibonacci.py", "--size", str(size), "--copies", "3")
    a, b = 0, 1
    for _ in range(size - 2):
        a, b = b, a + b
    # F(size - 1) is too long to print whole (1045 digits): the example shows count and tail.
    digits = str(b)
    assert grab(r"Last Fibonacci number: (.*)\n", out) == f"{len(digits)} digits, ending ...{digits[-10:]}"
    assert "local execution time" in out and "remote execution time" in out


def test_matrix_is_put_once_and_summed_remotely() -> None:
    out = run_example("matrix.py", "--size", "1000", "--tasks", "3")
    assert "Matrix: 1000x1000 float64" in out
    # Exact equality: the task reads the very same float64 data. (A mismatch in the last digit
    # means the store handed out a misaligned buffer, which changes numpy's SIMD summation.)
    assert grab(r"Match: (\w+)", out) == "True", out
    assert len(grab(r"Remote sums: \[(.*)\]", out).split(",")) == 3


def test_counter_actor_keeps_its_state_across_calls_and_tasks() -> None:
    out = run_example("counter.py", "--increments", "5", "--tasks", "3")
    assert "Values seen by the driver: [1, 2, 3, 4, 5]" in out
    assert int(grab(r"Counter value after 3 tasks: (\d+)", out)) == 5 + 3 * 5


def test_global_pacer_limits_the_rate_across_all_tasks_and_processes() -> None:
    rate, tasks, calls_per_task = 20.0, 6, 5
    calls = tasks * calls_per_task
    args = [
        "--rate",
        str(rate),
        "--tasks",
        str(tasks),
        "--calls-per-task",
        str(calls_per_task),
    ]
    out = run_example("pacer.py", *args)
    assert grab(r"Calls: (\d+)", out) == str(calls)
    assert int(grab(r"in (\d+) processes", out)) >= 2, "the tasks should run in parallel"
    span = float(grab(r"Span: ([\d.]+) s", out))
    # N calls at rate R, all tasks together: slots are 1/R apart, so about (N - 1) / R seconds.
    assert (calls - 1) / rate - 0.02 <= span <= (calls - 1) / rate + 2.0, out

    # The same tasks with a per-process global variable exceed the limit: it is not shared.
    broken = run_example("pacer.py", *args, "--per-process")
    # (Any overlap of two processes exceeds R; the margin only absorbs a busy machine's jitter.)
    assert int(grab(r"in (\d+) processes", broken)) >= 2, broken
    assert float(grab(r"observed rate: ([\d.]+)/s", broken)) > 1.1 * rate, broken


def test_two_actors_load_and_filter_their_halves_in_parallel() -> None:
    rows, threshold, delay = 10_000, 100, 1.0
    out = run_example(
        "two_actors.py",
        "--rows",
        str(rows),
        "--threshold",
        str(threshold),
        "--load-delay",
        str(delay),
    )
    assert f"Loaded [{rows // 2}, {rows - rows // 2}] rows" in out
    # Both loads sleep `delay`; done one after the other they would take twice as long.
    assert float(grab(r"rows in ([\d.]+) s", out)) < 1.9 * delay, out
    ids = [i for i in range(rows) if (i * 7919 + 13) % 1000 < threshold]
    assert grab(r"Rows with value < \d+: (\d+)", out) == str(len(ids))
    assert int(grab(r"id sum (\d+)", out)) == sum(ids)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_every_example_is_covered_by_a_test(path: Path) -> None:
    tested = Path(__file__).read_text()
    assert f'"{path.name}"' in tested, f"examples/{path.name} has no test"


def test_tune_asha_prints_the_config_with_the_best_final_score_and_stops_most_trials_early(tmp_path: Path) -> None:
    import ast
    import json

    out = run_example("tune_asha.py", env={"SPINDLE_TUNE_RESULTS_DIR": str(tmp_path)})
    best = ast.literal_eval(grab(r"Best config: (\{.*\})", out))
    [experiment] = list(tmp_path.iterdir())
    finals = []
    for trial in experiment.iterdir():
        lines = (trial / "result.json").read_text().splitlines()
        finals.append(json.loads(lines[-1]))
    assert len(finals) == 10
    top = max(finals, key=lambda r: r["score"])
    assert best == top["config"]
    total = sum(r["training_iteration"] for r in finals)
    assert total < 10 * 100 / 2, f"ASHA ran {total} iterations"  # most trials stop at the first rungs
    assert "TERMINATED" in out and "Tune finished" in out


def test_placement_groups_reserves_bundles_and_runs_a_worker_in_each() -> None:
    out = run_example("placement_groups.py", "--workers", "2", "--strategy", "STRICT_PACK", "--steps", "3")
    assert "Placement group ready: 2 bundles, strategy STRICT_PACK" in out
    assert grab(r"Totals after 3 steps: (.*)\n", out) == "[6, 12]"
    assert "Every worker ran on its bundle's node: True" in out
    assert grab(r"Nodes used: (\d+)", out) == "1"
    assert "State after removal: REMOVED" in out


def test_streaming_generator_streams_batches_and_running_means() -> None:
    import numpy as np

    batches, size = 5, 1000
    out = run_example("streaming_generator.py", "--batches", str(batches), "--batch-size", str(size), "--window", "2")
    rng = np.random.default_rng(0)
    data = [rng.integers(0, 1000, size=size) for _ in range(batches)]
    assert grab(r"Batches streamed: (\d+)", out) == str(batches)
    assert int(grab(r"Total of all values: (\d+)", out)) == sum(int(b.sum()) for b in data)
    mean = sum(int(b.sum()) for b in data) / (batches * size)
    assert grab(r"Running means from the actor: (\d+) values", out) == str(batches)
    assert float(grab(r"last ([\d.]+)", out)) == pytest.approx(mean, abs=1e-3)
