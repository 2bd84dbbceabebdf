"""``Pool``: Python's ``multiprocessing.Pool`` API with actors as the pool's processes.

Work is cut into chunks (``chunksize``, by default about four chunks per process, as multiprocessing
does) and the chunks are dealt to the actors in turn; the function travels once per call (``put``),
not once per chunk. ``imap``/``imap_unordered`` keep a bounded window of chunks in flight, so a long or
endless iterable is consumed as results are taken. Results and exceptions come back like
multiprocessing's: ``map`` raises the first failing item's exception with its type, and the remote
traceback is its ``__cause__``.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from multiprocessing import TimeoutError as MpTimeoutError
from typing import Any

import spindle
from spindle.exceptions import GetTimeoutError
from spindle.util.multiprocessing._actor import PoolActor, _Failure

Callback = Callable[[Any], object]
_RUN, _CLOSE, _TERMINATE = "RUN", "CLOSE", "TERMINATE"


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _unpack(values: Iterable[Any]) -> list[Any]:
    out = list(values)
    for v in out:
        if isinstance(v, _Failure):
            v.reraise()
    return out


class AsyncResult:
    """The result of ``apply_async``/``map_async``/``starmap_async`` (multiprocessing's ``AsyncResult``)."""

    def __init__(self, refs: list[spindle.ObjectRef], single: bool, callback: Callback | None,
                 error_callback: Callback | None):
        self._refs = refs
        self._single = single
        self._callback = callback
        self._error_callback = error_callback
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        if not refs:  # map over nothing
            self._settle()

    def _settle(self, timeout: float | None = None) -> None:
        """Fetch the outcome (once), then run the callbacks."""
        if self._done.is_set():
            return
        try:
            values = [v for chunk in spindle.get(self._refs, timeout=timeout) for v in chunk]
            result = _unpack(values)
            self._value = result[0] if self._single else result
        except GetTimeoutError:
            raise MpTimeoutError() from None
        except Exception as e:
            self._error = e
        if self._done.is_set():  # another thread settled it meanwhile
            return
        self._done.set()
        try:
            if self._error is None and self._callback is not None:
                self._callback(self._value)
            elif self._error is not None and self._error_callback is not None:
                self._error_callback(self._error)
        except Exception:  # a callback's failure must not lose the result, as in multiprocessing
            pass

    def ready(self) -> bool:
        if self._done.is_set():
            return True
        ready, _ = spindle.wait(self._refs, num_returns=len(self._refs), timeout=0)
        return len(ready) == len(self._refs)

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        self._settle()
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        spindle.wait(self._refs, num_returns=len(self._refs), timeout=timeout)

    def get(self, timeout: float | None = None) -> Any:
        self._settle(timeout)
        if self._error is not None:
            raise self._error
        return self._value


class IMapIterator:
    """What ``imap``/``imap_unordered`` return: an iterator with multiprocessing's ``next(timeout)``."""

    def __init__(self, pool: Pool, func: Any, iterable: Iterable[Any], chunksize: int, star: bool,
                 ordered: bool):
        self._submit = lambda chunk: pool._submit_chunk(func, chunk, star)
        self._pending_chunks = _chunks(iterable, chunksize)
        self._window = max(2, 2 * len(pool._actors))
        self._inflight: collections.deque[spindle.ObjectRef] = collections.deque()
        self._ready: collections.deque[Any] = collections.deque()
        self._ordered = ordered
        self._exhausted = False
        self._fill()

    def _fill(self) -> None:
        while not self._exhausted and len(self._inflight) < self._window:
            chunk = next(self._pending_chunks, None)
            if chunk is None:
                self._exhausted = True
                break
            self._inflight.append(self._submit(chunk))

    def __iter__(self) -> IMapIterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        while not self._ready:
            if not self._inflight:
                raise StopIteration
            if self._ordered:
                ref = self._inflight[0]
            else:
                done, _ = spindle.wait(list(self._inflight), num_returns=1, timeout=timeout)
                if not done:
                    raise MpTimeoutError()
                ref = done[0]
            try:
                values = spindle.get(ref, timeout=timeout)
            except GetTimeoutError:
                raise MpTimeoutError() from None
            self._inflight.remove(ref)
            self._ready.extend(values)
            self._fill()
        value = self._ready.popleft()
        if isinstance(value, _Failure):
            value.reraise()
        return value


class Pool:
    """``multiprocessing.Pool`` whose processes are actors on the cluster (``ray.util.multiprocessing.Pool``).

    ``processes`` defaults to the cluster's CPUs; each process is an actor holding ``num_cpus=1`` (change
    it with ``ray_remote_args``), placed with the SPREAD strategy so the pool covers every node.
    ``maxtasksperchild`` replaces a process after that many chunks. Connects to ``ray_address`` (or starts
    an embedded cluster) when Spindle is not initialized yet.
    """

    def __init__(self, processes: int | None = None, initializer: Callable[..., Any] | None = None,
                 initargs: Sequence[Any] | None = None, maxtasksperchild: int | None = None,
                 context: Any = None, ray_address: str | None = None,
                 ray_remote_args: Mapping[str, Any] | None = None):
        del context  # processes are actors: there is no start method to choose
        if not spindle.is_initialized():
            spindle.init(address=ray_address)
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild < 1):
            raise ValueError("maxtasksperchild must be a positive int or None")
        self._remote_args = {"num_cpus": 1, "scheduling_strategy": "SPREAD", **(ray_remote_args or {})}
        cpus = float(spindle.cluster_resources().get("CPU", 0))
        if processes is None:
            processes = max(1, int(cpus // max(float(self._remote_args["num_cpus"]), 1e-9)))
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        need = processes * float(self._remote_args["num_cpus"])
        if need > cpus:
            raise ValueError(
                f"Pool(processes={processes}) needs {need:g} CPUs but the cluster has {cpus:g}: pass fewer "
                "processes, add nodes, or give each process less with ray_remote_args={'num_cpus': ...}")
        self._initializer = initializer
        self._initargs = tuple(initargs or ())
        self._maxtasks = maxtasksperchild
        self._state = _RUN
        self._lock = threading.Lock()
        self._next = 0
        self._actors = [self._new_actor() for _ in range(processes)]
        self._counts = [0] * processes
        self._retired: list[tuple[Any, spindle.ObjectRef]] = []
        self._outstanding: list[spindle.ObjectRef] = []
        self._prune_at = 256
        # start-up errors (the initializer raised, no room for the actors) surface here, not at first use
        spindle.get([a.ping.remote() for a in self._actors])

    def _new_actor(self) -> Any:
        return PoolActor.options(**self._remote_args).remote(self._initializer, self._initargs)

    # --- submission ------------------------------------------------------------------------------
    def _check_running(self) -> None:
        if self._state != _RUN:
            raise ValueError("Pool not running")

    def _submit_chunk(self, func: Any, chunk: list[Any], star: bool) -> spindle.ObjectRef:
        with self._lock:
            self._check_running()
            i = self._next % len(self._actors)
            self._next += 1
            ref: spindle.ObjectRef = self._actors[i].run_chunk.remote(func, chunk, star)
            self._counts[i] += 1
            if self._maxtasks is not None and self._counts[i] >= self._maxtasks:
                self._retired.append((self._actors[i], ref))
                self._actors[i] = self._new_actor()
                self._counts[i] = 0
            self._outstanding.append(ref)
            if len(self._outstanding) >= self._prune_at:  # forget finished chunks now and then, in one call
                _, self._outstanding = spindle.wait(self._outstanding, num_returns=len(self._outstanding), timeout=0)
                self._prune_at = max(256, 2 * len(self._outstanding))
            if self._retired:
                self._reap_retired()
        return ref

    def _reap_retired(self) -> None:
        keep = []
        for actor, last in self._retired:
            if _is_ready(last):
                spindle.kill(actor)
            else:
                keep.append((actor, last))
        self._retired = keep

    def _default_chunksize(self, n: int) -> int:
        size, extra = divmod(n, len(self._actors) * 4)
        return max(1, size + (1 if extra else 0))

    def _async(self, func: Callable[..., Any], items: list[Any], chunksize: int | None, star: bool, single: bool,
               callback: Callback | None, error_callback: Callback | None) -> AsyncResult:
        self._check_running()
        if chunksize is not None and chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        size = chunksize or self._default_chunksize(len(items))
        fn = spindle.put(func)
        refs = [self._submit_chunk(fn, chunk, star) for chunk in _chunks(items, size)]
        result = AsyncResult(refs, single, callback, error_callback)
        if callback is not None or error_callback is not None:
            threading.Thread(target=_settle_quietly, args=(result,), daemon=True,
                             name="spindle-pool-callback").start()
        return result

    # --- multiprocessing.Pool's API --------------------------------------------------------------
    def apply(self, func: Callable[..., Any], args: Sequence[Any] = (), kwds: Mapping[str, Any] | None = None) -> Any:
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func: Callable[..., Any], args: Sequence[Any] = (), kwds: Mapping[str, Any] | None = None,
                    callback: Callback | None = None, error_callback: Callback | None = None) -> AsyncResult:
        kwargs = dict(kwds or {})
        call = (lambda *a: func(*a, **kwargs)) if kwargs else func
        return self._async(call, [tuple(args)], 1, True, True, callback, error_callback)

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        return self.map_async(func, iterable, chunksize).get()  # type: ignore[no-any-return]

    def map_async(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None,
                  callback: Callback | None = None, error_callback: Callback | None = None) -> AsyncResult:
        return self._async(func, list(iterable), chunksize, False, False, callback, error_callback)

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Sequence[Any]],
                chunksize: int | None = None) -> list[Any]:
        return self.starmap_async(func, iterable, chunksize).get()  # type: ignore[no-any-return]

    def starmap_async(self, func: Callable[..., Any], iterable: Iterable[Sequence[Any]], chunksize: int | None = None,
                      callback: Callback | None = None, error_callback: Callback | None = None) -> AsyncResult:
        return self._async(func, [tuple(a) for a in iterable], chunksize, True, False, callback, error_callback)

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> IMapIterator:
        self._check_running()
        return IMapIterator(self, spindle.put(func), iterable, chunksize, False, ordered=True)

    def imap_unordered(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> IMapIterator:
        self._check_running()
        return IMapIterator(self, spindle.put(func), iterable, chunksize, False, ordered=False)

    def close(self) -> None:
        """No more work is accepted; what was submitted still runs (``join`` waits for it)."""
        if self._state == _RUN:
            self._state = _CLOSE

    def terminate(self) -> None:
        """Stop at once: the processes are killed and outstanding work is lost."""
        self._state = _TERMINATE
        with self._lock:
            for actor in [*self._actors, *(a for a, _ in self._retired)]:
                try:
                    spindle.kill(actor)
                except Exception:  # already dead, or the cluster is gone
                    pass
            self._retired = []
            self._outstanding = []

    def join(self) -> None:
        """Wait for the submitted work after ``close()`` (or ``terminate()``), then stop the processes."""
        if self._state == _RUN:
            raise ValueError("Pool is still running: call close() or terminate() before join()")
        if self._state == _CLOSE:
            if self._outstanding:
                spindle.wait(self._outstanding, num_returns=len(self._outstanding))
            self.terminate()

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def __repr__(self) -> str:
        return f"<spindle.util.multiprocessing.Pool state={self._state} processes={len(self._actors)}>"


def _is_ready(ref: spindle.ObjectRef) -> bool:
    ready, _ = spindle.wait([ref], num_returns=1, timeout=0)
    return bool(ready)


def _settle_quietly(result: AsyncResult) -> None:
    try:
        result._settle()
    except Exception:  # the cluster went away: get() will say so to whoever asks
        pass
