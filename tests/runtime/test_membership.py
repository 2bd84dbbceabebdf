"""When a silent node is declared dead: the pure policy, on plain numbers."""

import socket

from spindle._membership import Timing, after_probe, death_reason, head_stall, verdict

T = Timing(timeout_s=4.0, suspect_after_s=1.0)


def test_a_node_heard_from_recently_is_alive() -> None:
    assert verdict(0.0, T) == "alive"
    assert verdict(1.0, T) == "alive"


def test_a_node_silent_for_a_few_heartbeats_is_probed() -> None:
    assert verdict(1.01, T) == "probe"
    assert verdict(4.0, T) == "probe"


def test_a_node_silent_past_the_timeout_is_dead_without_a_probe() -> None:
    assert verdict(4.01, T) == "dead"


def test_a_suspect_time_above_the_timeout_never_delays_the_timeout() -> None:
    t = Timing(timeout_s=2.0, suspect_after_s=5.0)
    assert verdict(2.5, t) == "dead"
    assert verdict(1.9, t) == "alive"


def test_only_a_refused_connection_makes_a_probe_fatal() -> None:
    assert after_probe(refused=True) == "dead"
    assert after_probe(refused=False) == "alive"


def test_only_the_part_of_a_gap_between_checks_beyond_scheduling_noise_is_a_stall_of_the_head() -> None:
    assert head_stall(0.5, interval_s=0.5) == 0.0
    assert head_stall(1.0, interval_s=0.5) == 0.0  # up to two intervals: noise
    assert head_stall(6.0, interval_s=0.5) == 5.0


def test_a_node_is_not_declared_dead_for_the_time_the_head_itself_stood_still() -> None:
    from spindle._head.head_state import HeadState
    from spindle._proto import pb
    from spindle._rpc.channels import Channels

    agent = socket.create_server(("127.0.0.1", 0))  # a live agent's port: probes connect (busy, not gone)
    head = HeadState(Channels("t"), "session")
    head.register_node(pb.NodeInfo(node_id="n", address=f"127.0.0.1:{agent.getsockname()[1]}"))
    rec = head.nodes["n"]
    t0 = rec.last_seen
    head.check_nodes(T, now=t0 + 0.4)
    head.check_nodes(T, now=t0 + 10.4)  # the head's own threads did not run for ~10 s: no heartbeat came in either
    assert rec.view.alive
    head.check_nodes(T, now=t0 + 10.9)  # and from now on the node's silence counts again
    head.check_nodes(T, now=t0 + 15.9)  # (checks every 0.5 s would have run; the gap is a stall again)
    assert rec.view.alive
    for k in range(1, 12):  # regular checks, still no heartbeat: dead after the timeout
        head.check_nodes(T, now=t0 + 15.9 + 0.5 * k)
    assert not rec.view.alive and "missed heartbeats" in rec.info.death_reason
    agent.close()


def test_the_node_whose_agent_runs_in_the_heads_own_process_is_never_declared_dead_for_silence() -> None:
    from spindle._head.head_state import HeadState
    from spindle._proto import pb
    from spindle._rpc.channels import Channels

    head = HeadState(Channels("t"), "session")
    for nid in ("embedded", "remote"):
        head.register_node(pb.NodeInfo(node_id=nid, address="10.255.255.1:1"))
    head.co_located.add("embedded")
    t0 = max(rec.last_seen for rec in head.nodes.values())
    for k in range(1, 30):  # regular checks, no heartbeats for 14.5 s
        head.check_nodes(T, now=t0 + 0.5 * k)
    assert head.nodes["embedded"].view.alive and not head.nodes["remote"].view.alive


def test_the_reason_says_what_was_seen() -> None:
    assert death_reason(1.234, refused=True) == (
        "its agent stopped heartbeating 1.2 s ago and refuses connections (the process exited)")
    assert death_reason(4.5, refused=False) == "it missed heartbeats for 4.5 s"


def test_a_driver_acts_on_each_death_of_a_node_once_even_when_it_rejoins_and_dies_again() -> None:
    from spindle._membership import newly_dead
    from spindle._proto import pb

    def view(alive: bool) -> list[pb.NodeInfo]:
        return [pb.NodeInfo(node_id="a", address="10.0.0.1:1", alive=True),
                pb.NodeInfo(node_id="b", address="10.0.0.2:1", alive=alive)]

    seen: set[str] = set()
    assert newly_dead(view(alive=True), seen) == {}
    assert newly_dead(view(alive=False), seen) == {"b": "10.0.0.2:1"}
    assert newly_dead(view(alive=False), seen) == {}  # the same death is not reported twice
    assert newly_dead(view(alive=True), seen) == {}  # b rejoined under its ID
    assert newly_dead(view(alive=False), seen) == {"b": "10.0.0.2:1"}  # and its second death counts
