"""The actor a trial runs in: one per trial, created with the trial's resources.

``next_result()`` returns the trial's next step as a tuple: ``("result", metrics, checkpoint
archive or None)``, ``("done",)`` or ``("error", traceback)``. A function trainable runs in a thread
that hands each ``tune.report`` over and then waits to be asked for the next one, so a trial never
runs ahead of the scheduler's decision; a class trainable runs one ``step()`` per call.
"""

from __future__ import annotations

import os
import pickle
import queue
import shutil
import socket
import tempfile
import threading
import time
import traceback
from typing import Any

from spindle.tune import session
from spindle.tune.checkpoint import Checkpoint, pack, unpack
from spindle.tune.trainable import Trainable

_DICT_FILE = "_dict_checkpoint.pkl"


class _FunctionRunner:
    def __init__(self, fn: Any, config: dict[str, Any], checkpoint: Checkpoint | None, info: dict[str, Any]) -> None:
        self.fn, self.config, self.checkpoint, self.info = fn, config, checkpoint, info
        self._out: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._go = threading.Semaphore(0)
        self._thread: threading.Thread | None = None
        self._last_checkpoint: bytes | None = None

    def _main(self) -> None:
        try:
            self.fn(self.config)
            self._out.put(("done",))
        except BaseException:  # noqa: BLE001 - the trial's error is reported, never raised here
            self._out.put(("error", traceback.format_exc()))

    def report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
        archive = pack(checkpoint.path) if checkpoint is not None else None
        if archive is not None:
            self._last_checkpoint = archive
        self._out.put(("result", metrics, archive))
        self._go.acquire()

    def next_result(self) -> tuple[Any, ...]:
        if self._thread is None:
            session._set_session(self)
            self._thread = threading.Thread(target=self._main, name="tune-trial", daemon=True)
            self._thread.start()
        else:
            self._go.release()
        return self._out.get()

    def save(self) -> bytes | None:
        return self._last_checkpoint


class _ClassRunner:
    def __init__(self, cls: type[Trainable], config: dict[str, Any], checkpoint: Checkpoint | None,
                 info: dict[str, Any]) -> None:
        self.instance = cls(config, info)
        if checkpoint is not None:
            path = os.path.join(checkpoint.path, _DICT_FILE)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    self.instance.load_checkpoint(pickle.load(f))
            else:
                self.instance.load_checkpoint(checkpoint.path)

    def next_result(self) -> tuple[Any, ...]:
        try:
            metrics = self.instance.step()
            self.instance._iteration += 1
        except BaseException:  # noqa: BLE001
            return ("error", traceback.format_exc())
        if not isinstance(metrics, dict):
            return ("error", f"{type(self.instance).__name__}.step() must return a dict, got {type(metrics).__name__}")
        return ("result", metrics, None)

    def save(self) -> bytes | None:
        directory = tempfile.mkdtemp(prefix="spindle-tune-save-")
        try:
            data = self.instance.save_checkpoint(directory)
            if isinstance(data, dict):
                with open(os.path.join(directory, _DICT_FILE), "wb") as f:
                    pickle.dump(data, f)
            return pack(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def stop(self) -> None:
        self.instance.cleanup()


class TrialActor:
    def __init__(self, trainable: Any, config: dict[str, Any], checkpoint: bytes | None, info: dict[str, Any]) -> None:
        self._tmp = tempfile.mkdtemp(prefix="spindle-tune-trial-")
        restored = Checkpoint(unpack(checkpoint, os.path.join(self._tmp, "restore"))) if checkpoint else None
        self._started = time.time()
        is_class = isinstance(trainable, type) and issubclass(trainable, Trainable)
        self.runner: Any = (_ClassRunner if is_class else _FunctionRunner)(trainable, config, restored, info)

    def next_result(self) -> tuple[Any, ...]:
        start = time.time()
        out = self.runner.next_result()
        if out[0] == "result":
            out[1].setdefault("time_this_iter_s", time.time() - start)
        return out

    def save(self) -> bytes | None:
        return self.runner.save()

    def stop(self) -> None:
        if isinstance(self.runner, _ClassRunner):
            self.runner.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def where(self) -> tuple[str, int]:
        return socket.gethostname(), os.getpid()
