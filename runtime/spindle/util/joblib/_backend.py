"""The joblib backend: joblib's multiprocessing-pool machinery (batching, callbacks, abort) driving a
`spindle.util.multiprocessing.Pool`, so every batch runs in a pool actor somewhere on the cluster."""

from __future__ import annotations

from typing import Any

from joblib._parallel_backends import AutoBatchingMixin, ParallelBackendBase, PoolManagerMixin

import spindle
from spindle.util.multiprocessing import Pool


class SpindleBackend(PoolManagerMixin, AutoBatchingMixin, ParallelBackendBase):  # type: ignore[misc]
    """``n_jobs=-1`` means every CPU of the cluster; ``ray_remote_args`` sets the pool actors' options."""

    supports_retrieve_callback = True
    supports_return_generator = False
    supports_timeout = True
    uses_threads = False

    def __init__(self, nesting_level: int | None = None, inner_max_num_threads: int | None = None,
                 ray_remote_args: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **kwargs)
        self.ray_remote_args = ray_remote_args

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            if not spindle.is_initialized():
                spindle.init()
            cpus = int(spindle.cluster_resources().get("CPU", 1))
            return max(cpus + 1 + n_jobs, 1)
        return int(n_jobs)

    def configure(self, n_jobs: int | None = 1, parallel: Any = None, prefer: Any = None, require: Any = None,
                  **pool_kwargs: Any) -> int:
        n = self.effective_n_jobs(n_jobs)
        self._pool = Pool(processes=n, ray_remote_args=self.ray_remote_args)
        self.parallel = parallel
        return n

    def terminate(self) -> None:
        super().terminate()
        self.reset_batch_stats()
