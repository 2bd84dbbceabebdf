"""pytest plugin: `netns_hosts(n)` gives a test n fake machines, each with its own IP.

Listed in the root conftest's `pytest_plugins`. Any test using the fixtures is marked `multinode`
automatically (so `-m "not multinode"` skips them on machines without root). Where namespaces
cannot be created the test fails with the reason instead of being silently skipped: CI runs as
root, so a skip there would hide a broken setup.

    def test_two_nodes(netns_hosts):
        head, node = netns_hosts(2)
        server = head.popen(["spindle", "start", "--head", "--block"], env=...)
        ...

See tests/netns_harness/hosts.py for the topology and the guarantees of teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.netns_harness.hosts import Host, NetnsUnavailable, Network, check_available

HostFactory = Callable[[int], list[Host]]
_FIXTURES = ("netns_hosts", "netns_hosts_module")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "multinode: needs network namespaces (root and iproute2)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in _FIXTURES):
            item.add_marker(pytest.mark.multinode)


def _factory() -> Iterator[HostFactory]:
    try:
        check_available()
    except NetnsUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    networks: list[Network] = []

    def make_hosts(n: int) -> list[Host]:
        """n more hosts on this test's bridge (the bridge is made on the first call)."""
        if not networks:
            networks.append(Network())
        return networks[0].add_hosts(n)

    try:
        yield make_hosts
    finally:
        for net in networks:
            net.teardown()


@pytest.fixture
def netns_hosts() -> Iterator[HostFactory]:
    """Factory of hosts torn down (processes killed, namespaces deleted) after the test."""
    yield from _factory()


@pytest.fixture(scope="module")
def netns_hosts_module() -> Iterator[HostFactory]:
    """Like `netns_hosts`, shared by the tests of a module (e.g. one cluster for many tests)."""
    yield from _factory()
