"""Taking back an unused lease, as pure policy: which leases the agent asks about (``lease_reclaim.due``) and the
worker's answer (``LeaseGuard``): a lease is taken back only if no stream of it ever reached the worker, and a
stream that comes after is refused. Exact expectations."""

from __future__ import annotations

from spindle._agent.lease_reclaim import due
from spindle._core.lease_guard import LeaseGuard


def test_the_agent_asks_about_leases_unconfirmed_past_the_window_still_lent_and_not_asked_already() -> None:
    unconfirmed = {b"old": 10.0, b"fresh": 14.5, b"asked": 9.0, b"returned": 8.0}
    assert due(unconfirmed, 15.0, 1.0, asking={b"asked"}, lent={b"old", b"fresh", b"asked"}) == [b"old"]
    assert due(unconfirmed, 15.0, 5.0, asking=set(), lent=set(unconfirmed)) == [b"asked", b"returned"]
    assert due({b"edge": 10.0}, 11.0, 1.0, asking=set(), lent={b"edge"}) == []  # exactly the window: not yet


def test_a_lease_no_stream_reached_is_revoked_and_its_late_stream_refused() -> None:
    g = LeaseGuard()
    assert g.revoke(b"L") is True
    assert g.open(b"L") is False
    assert g.open(b"L") is False  # whenever it comes
    assert g.revoke(b"L") is True  # asked again (the first answer was lost): the same answer


def test_a_lease_whose_stream_reached_the_worker_is_never_revoked() -> None:
    g = LeaseGuard()
    assert g.open(b"L") is True
    assert g.revoke(b"L") is False
    assert g.open(b"M") is True
    assert g.revoke(b"M") is False  # also after its stream ended: its tasks may have run


def test_leases_are_independent() -> None:
    g = LeaseGuard()
    assert g.revoke(b"L") is True
    assert g.open(b"M") is True
    assert g.revoke(b"M") is False
    assert g.open(b"L") is False


def test_the_guard_remembers_a_bounded_number_of_leases() -> None:
    g = LeaseGuard(remembered=2)
    for lid in (b"a", b"b", b"c"):
        assert g.revoke(lid) is True
    assert g.open(b"a") is True  # the oldest revocation was forgotten
    assert g.open(b"c") is False
    for lid in (b"x", b"y", b"z"):
        assert g.open(lid) is True
    assert g.revoke(b"x") is True  # the oldest use was forgotten
    assert g.revoke(b"z") is False


def test_the_guard_remembers_a_bounded_number_of_leases_forgetting_the_oldest() -> None:
    g = LeaseGuard(remembered=2)
    for lid in (b"A", b"B", b"C"):
        assert g.revoke(lid) is True
    assert g.open(b"A") is True  # forgotten: the oldest of three
    assert g.open(b"B") is False and g.open(b"C") is False
