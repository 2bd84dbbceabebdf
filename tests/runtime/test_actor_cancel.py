"""cancel() beyond a driver's own normal tasks, with Ray's semantics, on a real embedded cluster: actor calls
(queued ones never run, a running async call gets CancelledError, a running sync call runs on but its
caller reads TaskCancelledError, force is refused), a ref owned by another worker, and a forced recursive cancel that takes the children down too."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

import spindle
from spindle.exceptions import TaskCancelledError
from tests.runtime._nodes import process_gone, wait_until

pytestmark = pytest.mark.usefixtures("cluster")






@spindle.remote
class Sync:
    def hold(self, started: str, release: str) -> str:
        Path(started).touch()
        while not os.path.exists(release):
            time.sleep(0.02)
        return "finished"

    def mark(self, path: str) -> str:
        Path(path).touch()
        return "ran"


def test_a_queued_actor_call_never_runs_and_a_running_sync_call_runs_on_but_reads_cancelled(tmp_path: Path) -> None:
    a = Sync.remote()
    started, release, marker = tmp_path / "started", tmp_path / "release", tmp_path / "marker"
    running = a.hold.remote(str(started), str(release))
    queued = a.mark.remote(str(marker))
    wait_until(started.exists, 60, "the first call started")
    spindle.cancel(queued)
    spindle.cancel(running)  # Ray does not interrupt a running call of a sync actor
    ready, _ = spindle.wait([queued], timeout=60)  # answered by the actor's worker, while `running` still runs
    assert ready == [queued]
    release.touch()
    with pytest.raises(TaskCancelledError):
        spindle.get(queued, timeout=60)
    with pytest.raises(TaskCancelledError):  # Ray: it ran to the end, its caller is told it was cancelled
        spindle.get(running, timeout=60)
    assert spindle.get(a.mark.remote(str(tmp_path / "later")), timeout=60) == "ran"  # the actor carries on
    assert not marker.exists()


def test_cancelling_a_running_async_actor_call_raises_cancelled_error_in_its_coroutine() -> None:
    @spindle.remote
    class Async:
        def __init__(self) -> None:
            self.saw_cancel = False
            self.started = asyncio.Event()

        async def slow(self) -> str:
            self.started.set()
            try:
                await asyncio.sleep(600)
            except asyncio.CancelledError:
                self.saw_cancel = True
                raise
            return "slept"

        async def wait_started(self) -> None:
            await self.started.wait()

        async def saw(self) -> bool:
            return self.saw_cancel

    a = Async.remote()
    ref = a.slow.remote()
    spindle.get(a.wait_started.remote(), timeout=60)
    spindle.cancel(ref)
    with pytest.raises(TaskCancelledError):
        spindle.get(ref, timeout=60)
    assert spindle.get(a.saw.remote(), timeout=60) is True


def test_force_cancel_of_an_actor_call_is_refused_as_in_ray(tmp_path: Path) -> None:
    a = Sync.remote()
    started, release = tmp_path / "started", tmp_path / "release"
    ref = a.hold.remote(str(started), str(release))
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        spindle.cancel(ref, force=True)
    release.touch()
    assert spindle.get(ref, timeout=60) == "finished"


@spindle.remote
def sleeper(pid_file: str) -> str:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)
    return "slept"


def test_a_ref_owned_by_another_worker_can_be_cancelled(tmp_path: Path) -> None:
    @spindle.remote
    def spawn(pid_file: str) -> list[spindle.ObjectRef]:
        return [sleeper.remote(pid_file)]  # in a list, so the caller gets the ref itself

    pid_file = tmp_path / "pid"
    inner = spindle.get(spawn.remote(str(pid_file)), timeout=60)[0]
    wait_until(pid_file.exists, 60, "the inner task started")
    spindle.cancel(inner)
    with pytest.raises(TaskCancelledError):
        spindle.get(inner, timeout=60)


def test_a_forced_recursive_cancel_ends_the_children_and_frees_their_cpus(tmp_path: Path) -> None:
    @spindle.remote
    def parent(pid_file: str) -> str:
        return spindle.get(sleeper.remote(pid_file))

    pid_file = tmp_path / "child-pid"
    ref = parent.remote(str(pid_file))
    wait_until(pid_file.exists, 60, "the child task started")
    child_pid = int(pid_file.read_text())
    spindle.cancel(ref, force=True, recursive=True)
    with pytest.raises(TaskCancelledError):
        spindle.get(ref, timeout=60)
    wait_until(lambda: process_gone(child_pid), 60, "the child's worker process ended")
    wait_until(lambda: spindle.available_resources().get("CPU") == spindle.cluster_resources()["CPU"], 60,
               "every CPU is free again")
