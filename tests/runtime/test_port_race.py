"""The embedded cluster picks a free port for its head before the head binds it; another process may take it
in between (seen under load as "Failed to bind to address"). ``init()`` then starts the cluster again on
another port instead of failing."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import spindle
from spindle import _local_cluster


def test_init_starts_again_on_another_port_when_the_heads_picked_port_was_taken(monkeypatch: Any) -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    picks: list[int] = []
    real = _local_cluster.free_port

    def free_port(host: str = "127.0.0.1") -> int:
        port = taken.getsockname()[1] if not picks else real(host)  # the first pick is lost to another process
        picks.append(port)
        return port

    monkeypatch.setattr(_local_cluster, "free_port", free_port)
    try:
        spindle.init(num_cpus=1, include_dashboard=False)
        assert spindle.get(spindle.put(7)) == 7
        ctx = spindle.get_runtime_context()
        assert ctx.get_node_id()
        assert len(picks) == 2 and picks[0] == taken.getsockname()[1]
    finally:
        spindle.shutdown()
        taken.close()


def test_only_a_lost_port_race_is_retried_and_another_failed_start_still_shows_its_log() -> None:
    assert _local_cluster._lost_port_race("spindle head: cannot listen on 127.0.0.1:4: is the port in use?")
    assert not _local_cluster._lost_port_race("spindle agent: SPINDLE_NODE_LABELS is not a JSON object")
    with pytest.raises(RuntimeError, match="failed to start"):
        spindle.init(num_cpus=1, include_dashboard=False, resources={"CPU": "many"})  # type: ignore[dict-item]
    spindle.shutdown()
