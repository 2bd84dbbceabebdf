"""The network-namespace hosts behave like separate machines and vanish after the test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.netns_harness.hosts import Host, NetnsUnavailable, check_available, ip, leftover_namespaces, network
from tests.plugins.netns import HostFactory

pytestmark = pytest.mark.multinode

REPO = Path(__file__).resolve().parents[2]

ECHO_SERVER = textwrap.dedent(
    """
    import socket, sys
    srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
    print("listening", flush=True)
    while True:
        conn, (peer, _) = srv.accept()
        with conn:
            conn.sendall(f"hello {peer}".encode())
    """
)

CLIENT = textwrap.dedent(
    """
    import socket, sys
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
        print(s.recv(100).decode())
    """
)


def start_echo_server(host: Host, bind: str, port: int) -> subprocess.Popen[str]:
    server = host.popen([sys.executable, "-c", ECHO_SERVER, bind, str(port)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "listening"
    return server


def connect_from(host: Host, address: str, port: int) -> subprocess.CompletedProcess[str]:
    return host.run(
        [sys.executable, "-c", CLIENT, address, str(port)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_hosts_get_distinct_ips_on_one_subnet_with_loopback_up(netns_hosts: HostFactory) -> None:
    a, b = netns_hosts(2)
    assert a.ip != b.ip and a.name != b.name
    assert a.ip.rsplit(".", 1)[0] == b.ip.rsplit(".", 1)[0] == a.gateway.rsplit(".", 1)[0]
    for host in (a, b):
        addrs = ip("-n", host.name, "-4", "-br", "addr").stdout
        assert f"{host.ip}/24" in addrs
        assert "127.0.0.1/8" in addrs and "lo               UNKNOWN" in addrs


def test_a_server_in_one_host_is_reached_from_another_host_and_from_the_test(
    netns_hosts: HostFactory,
) -> None:
    a, b = netns_hosts(2)
    start_echo_server(a, a.ip, 7777)

    from_b = connect_from(b, a.ip, 7777)
    assert from_b.returncode == 0, from_b.stderr
    assert from_b.stdout.strip() == f"hello {b.ip}"  # B's traffic leaves from B's own IP

    with socket.create_connection((a.ip, 7777), timeout=5) as s:
        assert s.recv(100).decode() == f"hello {a.gateway}"  # the root side of the bridge


def test_hosts_reach_a_server_in_the_test_process_through_the_gateway(netns_hosts: HostFactory) -> None:
    (a,) = netns_hosts(1)
    srv = socket.create_server((a.gateway, 0))
    port = srv.getsockname()[1]
    with srv:
        client = a.popen(
            [sys.executable, "-c", f"import socket; socket.create_connection(('{a.gateway}', {port}), timeout=5)"]
        )
        conn, (peer, _) = srv.accept()
        conn.close()
        assert peer == a.ip
        assert client.wait(timeout=30) == 0


def test_each_host_has_its_own_loopback(netns_hosts: HostFactory) -> None:
    a, b = netns_hosts(2)
    start_echo_server(a, "127.0.0.1", 7778)
    assert connect_from(a, "127.0.0.1", 7778).stdout.strip() == "hello 127.0.0.1"
    assert connect_from(b, "127.0.0.1", 7778).returncode != 0


def test_teardown_kills_every_process_and_deletes_all_it_created() -> None:
    with network() as net:
        a, b = net.add_hosts(2)
        tracked = a.popen(["sleep", "1000"])
        # a daemon the harness never saw: it left its parent, but not the namespace
        b.run(["sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 < /dev/null &"], timeout=10)
        deadline = time.monotonic() + 5
        while not b.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon_pids = b.pids()
        assert daemon_pids
        run_id, bridge = net.run_id, net.bridge
    assert tracked.poll() is not None
    for pid in daemon_pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert leftover_namespaces(run_id) == []
    links = ip("-br", "link").stdout
    assert bridge not in links and f"sv{run_id}" not in links


def test_teardown_also_happens_when_the_test_fails(tmp_path: Path) -> None:
    names = tmp_path / "names"
    (tmp_path / "test_failing.py").write_text(
        textwrap.dedent(
            f"""
            def test_fails(netns_hosts):
                hosts = netns_hosts(2)
                hosts[0].popen(["sleep", "1000"])
                open({str(names)!r}, "w").write(" ".join(h.name for h in hosts))
                assert False, "deliberate"
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.plugins.netns",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_failing.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 1 and "deliberate" in proc.stdout, proc.stdout + proc.stderr
    created = names.read_text().split()
    assert len(created) == 2
    assert not set(created) & set(leftover_namespaces())


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_without_root_or_iproute2_the_reason_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NetnsUnavailable, match="must run as root"):
        check_available()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(NetnsUnavailable, match="apt-get install -y iproute2"):
        check_available()


def _docker_user_rules() -> str:
    return subprocess.run(["iptables", "-w", "-S", "DOCKER-USER"], capture_output=True, text=True, check=True).stdout


def test_beside_docker_the_bridge_is_accepted_in_docker_user_until_teardown() -> None:
    # Docker consults DOCKER-USER before its FORWARD DROP policy; without a chain there is nothing to do,
    # so make one the way dockerd does (an empty chain is harmless) when no Docker engine made it.
    created = subprocess.run(["iptables", "-w", "-N", "DOCKER-USER"], capture_output=True, check=False).returncode == 0
    try:
        with network() as net:
            a, b = net.add_hosts(2)
            rules = _docker_user_rules()
            assert f"-A DOCKER-USER -i {net.bridge} -j ACCEPT" in rules
            assert f"-A DOCKER-USER -o {net.bridge} -j ACCEPT" in rules
            start_echo_server(b, b.ip, 7779)
            assert connect_from(a, b.ip, 7779).stdout.strip() == f"hello {a.ip}"
            bridge = net.bridge
        assert bridge not in _docker_user_rules()
    finally:
        if created:
            subprocess.run(["iptables", "-w", "-X", "DOCKER-USER"], capture_output=True, check=False)
