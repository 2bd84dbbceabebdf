"""The per-process task-event buffer loses nothing while tasks record from many threads and the reporter
thread swaps batches out underneath them (a thread preempted between reading the buffer and appending to it
must not append to a batch that was already sent)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from spindle._core.task_events import TaskEvents
from spindle._head.state.store import decode_events
from spindle._proto import pb

THREADS, PER_THREAD = 4, 5_000


@pytest.fixture
def fast_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows: races show up at once
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_events_recorded_from_many_threads_during_flushes_all_reach_the_head(fast_switching: None) -> None:
    received: list[pb.TaskEventBatch] = []
    events = TaskEvents(received.append, lambda: "ab" * 16, "worker", 1, interval_s=0)  # flushed by hand below
    events.enabled = True
    done = threading.Event()

    def record(t: int) -> None:
        for i in range(PER_THREAD):
            events.finished(t.to_bytes(2, "big") + i.to_bytes(4, "big"), "f", b"\x01", b"")

    def flusher() -> None:
        while not done.is_set():
            events.flush()

    flushing = threading.Thread(target=flusher)
    flushing.start()
    recorders = [threading.Thread(target=record, args=(t,)) for t in range(THREADS)]
    for r in recorders:
        r.start()
    for r in recorders:
        r.join()
    done.set()
    flushing.join()
    events.flush()
    ids = [e[0] for batch in received for e in decode_events(batch)]  # task_id first
    assert len(ids) == THREADS * PER_THREAD and len(set(ids)) == len(ids)
