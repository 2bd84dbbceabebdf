"""``multiprocessing.Pool`` on the cluster (``ray.util.multiprocessing``): the same API, with the pool's
processes as actors spread over the nodes.

    from spindle.util.multiprocessing import Pool

    with Pool() as pool:              # one process per CPU of the cluster
        print(pool.map(f, range(100)))
"""

from multiprocessing import TimeoutError

from spindle.util.multiprocessing.pool import AsyncResult, IMapIterator, Pool

__all__ = ["AsyncResult", "IMapIterator", "Pool", "TimeoutError"]
