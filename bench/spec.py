"""What the suite measures: workloads, the metrics they report, and the sizes they run at.

This module is pure data shared by the orchestrator (which must not import Ray or Spindle) and the
worker (which runs inside the measured interpreter). Keeping the metric metadata here lets the report
orient every ratio the same way ("> 1 means Spindle is better") without knowing what a workload does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Better(str, Enum):
    """Which direction of a metric is an improvement; decides how the ratio is formed."""

    HIGHER = "higher"  # throughput: ratio = spindle / ray
    LOWER = "lower"  # time, memory, processes: ratio = ray / spindle
    BOOL = "bool"  # a property (zero-copy): no ratio, both values shown


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: Better


@dataclass(frozen=True)
class Workload:
    """One fresh-process measurement; ``script`` workloads are timed whole by the orchestrator."""

    name: str
    metrics: tuple[Metric, ...]
    scale: bool = False
    script: str | None = None


@dataclass(frozen=True)
class Sizes:
    """Knobs of every workload; ``FULL`` gives the reported figures, ``SMOKE`` only proves the code runs."""

    duration_s: float  # how long each timed throughput loop runs
    warmup: int  # calls before timing starts
    batch: int  # refs per batch in the *_async workloads
    big_bytes: int  # the "100 MiB numpy array"
    wait_refs: int
    square_tasks: int
    idle_tasks: int
    idle_settle_s: float
    primes_lo: int
    primes_hi: int
    primes_chunks: int
    scale_tasks: int
    scale_actors: int
    scale_get_refs: int
    scale_args: int
    tune_samples: int = 10  # bench/tune_asha.py: random configs
    tune_steps: int = 100  # ... and iterations each (ASHA max_t stays Ray's default 100)
    job_runs: int = 10  # bench/jobs_latency.py: jobs submitted per entrypoint and run (medians)


FULL = Sizes(
    duration_s=3.0,
    warmup=50,
    batch=1000,
    big_bytes=100 * 1024 * 1024,
    wait_refs=1000,
    square_tasks=1000,
    idle_tasks=10,
    idle_settle_s=2.0,
    primes_lo=10_000_000,
    primes_hi=12_000_000,
    primes_chunks=20,
    scale_tasks=100_000,
    scale_actors=1000,
    scale_get_refs=10_000,
    scale_args=1000,
)

SMOKE = Sizes(
    duration_s=0.1,
    warmup=2,
    batch=20,
    big_bytes=1024 * 1024,
    wait_refs=20,
    square_tasks=20,
    idle_tasks=10,
    idle_settle_s=0.2,
    primes_lo=10_000_000,
    primes_hi=10_020_000,
    primes_chunks=4,
    scale_tasks=200,
    scale_actors=4,
    scale_get_refs=100,
    scale_args=20,
    tune_samples=4,
    tune_steps=10,
    job_runs=2,
)

PRIMES_FULL_COUNT = 123_481  # primes in [10,000,000, 12,000,000); the script checks it


def _m(name: str, unit: str, better: Better) -> Metric:
    return Metric(name, unit, better)


H, L, B = Better.HIGHER, Better.LOWER, Better.BOOL

WORKLOADS: tuple[Workload, ...] = (
    Workload("init", (_m("init_seconds", "s", L),)),
    Workload("single_client_tasks_sync", (_m("single_client_tasks_sync", "/s", H),)),
    Workload("single_client_tasks_async", (_m("single_client_tasks_async", "/s", H),)),
    Workload("1_1_actor_calls_sync", (_m("1_1_actor_calls_sync", "/s", H),)),
    Workload("1_1_actor_calls_async", (_m("1_1_actor_calls_async", "/s", H),)),
    Workload("1_1_async_actor_calls_async", (_m("1_1_async_actor_calls_async", "/s", H),)),
    Workload("single_client_put_calls", (_m("single_client_put_calls", "/s", H),)),
    Workload("single_client_get_calls", (_m("single_client_get_calls", "/s", H),)),
    Workload(
        "single_client_put_gigabytes",
        (
            _m("single_client_put_gigabytes", "GiB/s", H),
            _m("single_client_get_100mib_calls", "/s", H),
            _m("get_100mib_zero_copy", "bool", B),
        ),
    ),
    Workload(
        "single_client_tasks_100mib_by_ref",
        (_m("single_client_tasks_100mib_by_ref", "/s", H),),
    ),
    Workload(
        "single_client_tasks_100mib_inline",
        (_m("single_client_tasks_100mib_inline", "/s", H),),
    ),
    Workload(
        "single_client_tasks_return_100mib",
        (_m("single_client_tasks_return_100mib", "/s", H),),
    ),
    Workload("single_client_wait_1k_refs", (_m("single_client_wait_1k_refs", "/s", H),)),
    Workload(
        "primes_script",
        (_m("primes_script_wall_seconds", "s", L),),
        script="bench/primes.py",
    ),
    Workload(
        "tune_asha_script",
        (
            _m("tune_asha_script_wall_seconds", "s", L),
            _m("tune_asha_fit_seconds", "s", L),
            _m("tune_asha_total_iterations", "iters", L),
        ),
        script="bench/tune_asha.py",
    ),
    Workload(
        "job_api_latency",
        (
            _m("job_submit_to_running_ms", "ms", L),
            _m("job_submit_to_succeeded_ms", "ms", L),
            _m("job_driver_submit_to_succeeded_ms", "ms", L),
        ),
        script="bench/jobs_latency.py",
    ),
    Workload("calculate_square_1000", (_m("calculate_square_1000_seconds", "s", L),)),
    Workload(
        "idle_cluster",
        (
            _m("idle_cluster_rss_mib", "MiB", L),
            _m("idle_cluster_pss_mib", "MiB", L),
            _m("idle_cluster_processes", "procs", L),
        ),
    ),
    Workload(
        "scale_100k_tasks",
        (
            _m("scale_100k_tasks_per_s", "/s", H),
            _m("scale_100k_tasks_peak_mib", "MiB", L),
        ),
        scale=True,
    ),
    Workload(
        "scale_1k_actors",
        (
            _m("scale_1k_actors_per_s", "/s", H),
            _m("scale_1k_actors_peak_mib", "MiB", L),
            _m("scale_1k_actors_pss_mib", "MiB", L),
        ),
        scale=True,
    ),
    Workload(
        "scale_get_10k_refs",
        (
            _m("scale_get_10k_refs_per_s", "/s", H),
            _m("scale_get_10k_refs_peak_mib", "MiB", L),
        ),
        scale=True,
    ),
    Workload(
        "scale_1k_ref_args",
        (
            _m("scale_1k_ref_args_seconds", "s", L),
            _m("scale_1k_ref_args_peak_mib", "MiB", L),
        ),
        scale=True,
    ),
)

# Run only by ``--multinode``: a driver in one network namespace, the CPUs on a node in another.
MULTINODE_WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "remote_tasks",
        (_m("remote_tasks_sync", "/s", H), _m("remote_tasks_async", "/s", H)),
    ),
    Workload(
        "remote_actor_calls",
        (
            _m("remote_actor_calls_sync", "/s", H),
            _m("remote_actor_calls_async", "/s", H),
        ),
    ),
    Workload(
        "remote_transfer",
        (
            _m("remote_transfer_to_node", "GiB/s", H),
            _m("remote_transfer_from_node", "GiB/s", H),
        ),
    ),
    Workload(
        "remote_pull",
        (
            _m("remote_pull_100mib", "GiB/s", H),
            _m("remote_pull_1gib", "GiB/s", H),
        ),
    ),
)

METRICS: dict[str, Metric] = {m.name: m for w in WORKLOADS + MULTINODE_WORKLOADS for m in w.metrics}


def workload(name: str) -> Workload:
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise KeyError(name)


def select(only: list[str], pool: tuple[Workload, ...] = WORKLOADS) -> list[Workload]:
    """Workloads of ``pool`` whose name contains any of ``only`` (all when empty)."""
    return [w for w in pool if not only or any(o in w.name for o in only)]
