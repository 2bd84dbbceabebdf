"""Actor calls on one node go over the local Unix-socket stream (_rpc.local_stream), with gRPC's guarantees."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import spindle
from spindle._core import context as _context
from spindle._core.actor_local_stream import LocalCall
from spindle._rpc import local_stream
from spindle.exceptions import ActorDiedError
from tests.runtime._nodes import actor_stream_call

pytestmark = pytest.mark.usefixtures("cluster")


@spindle.remote
class Echo:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def add(self, i: int) -> int:
        self.seen.append(i)
        return i

    def seen_list(self) -> list[int]:
        return self.seen

    def address(self) -> str:
        return _context.core().address

    def wait_for_file(self, path: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return True
            time.sleep(0.01)
        return False

    def say(self, text: str) -> int:
        print(text)
        return 1


@spindle.remote
class AsyncEcho:
    async def add(self, i: int) -> int:
        return i


def test_a_same_node_actor_is_called_over_the_local_stream_and_a_burst_keeps_its_order() -> None:
    a = Echo.remote()
    assert spindle.get(a.add.remote(-1)) == -1
    assert isinstance(actor_stream_call(a), LocalCall)
    refs = [a.add.remote(i) for i in range(2000)]
    assert spindle.get(refs) == list(range(2000))
    assert spindle.get(a.seen_list.remote()) == [-1, *range(2000)]


def test_a_result_is_delivered_while_the_next_call_still_runs(tmp_path: Path) -> None:
    # the second call waits for a file the caller creates only after it has the first result: a result
    # held back to be batched with the next one would deadlock here
    a = Echo.remote()
    flag = tmp_path / "go"
    first = a.add.remote(1)
    second = a.wait_for_file.remote(str(flag), 60.0)
    assert spindle.get(first, timeout=30) == 1
    flag.touch()
    assert spindle.get(second, timeout=60) is True


def test_calls_held_back_in_a_burst_reach_the_actor_without_a_get(tmp_path: Path) -> None:
    a = Echo.remote()
    spindle.get(a.add.remote(0))
    flag = tmp_path / "go"
    blocker = a.wait_for_file.remote(str(flag), 60.0)
    refs = [a.add.remote(i) for i in range(1, 50)]
    # nothing waits on them yet: the flusher must send them anyway; the last call creates nothing, so we
    # poll the actor's progress by letting the blocker go and reading results
    flag.touch()
    assert spindle.get(blocker, timeout=60) is True
    assert spindle.get(refs, timeout=60) == list(range(1, 50))


def test_async_actor_burst_over_the_local_stream() -> None:
    a = AsyncEcho.remote()
    assert spindle.get([a.add.remote(i) for i in range(1000)], timeout=60) == list(range(1000))
    assert isinstance(actor_stream_call(a), LocalCall)


def test_printed_lines_of_a_call_reach_the_driver(capsys: Any) -> None:
    a = Echo.remote()
    assert spindle.get(a.say.remote("hello from the local stream")) == 1
    deadline = time.monotonic() + 10
    out = ""
    while time.monotonic() < deadline:
        out += capsys.readouterr().out
        if "hello from the local stream" in out:
            break
        time.sleep(0.05)
    assert "hello from the local stream" in out


def test_a_wrong_token_is_refused_before_any_call_is_read() -> None:
    a = Echo.remote()
    address = spindle.get(a.address.remote())
    assert local_stream.connect(address, "not-the-token") is None
    good = local_stream.connect(address, _context.core().token)
    assert good is not None
    good.release()


def test_killing_the_actor_fails_calls_over_the_local_stream() -> None:
    a = Echo.remote()
    spindle.get(a.add.remote(1))
    spindle.kill(a)
    with pytest.raises(ActorDiedError):
        spindle.get(a.add.remote(2), timeout=60)
