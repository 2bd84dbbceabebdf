"""When a silent node is declared dead: the pure policy, on plain numbers."""

from spindle._membership import Timing, after_probe, death_reason, verdict

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


def test_the_reason_says_what_was_seen() -> None:
    assert death_reason(1.234, refused=True) == (
        "its agent stopped heartbeating 1.2 s ago and refuses connections (the process exited)")
    assert death_reason(4.5, refused=False) == "it missed heartbeats for 4.5 s"
