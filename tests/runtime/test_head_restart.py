"""A head killed with SIGKILL and started again on the same address, while a driver holds actors.

Real head, agent, worker and driver processes. The agent re-registers with the new head and
reports its live actors; the driver re-attaches its job. With ``--storage`` (SQLite) the named
actors, jobs and KV come back from disk; without it the live actors (names included) come back
from the agent and the KV is lost, as documented.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from spindle._head.tables import MemoryTables, SqliteTables

PY = sys.executable
TOKEN = "head-restart-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, tmp: Path, storage: Path | None):
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.storage = storage
        self.env = {**os.environ, "SPINDLE_TOKEN": TOKEN, "SPINDLE_TEMP_DIR": str(tmp / "spindle"),
                    "SPINDLE_HEAD_RECOVERY_GRACE_S": "6"}
        self.env.pop("SPINDLE_ADDRESS", None)
        self.log = open(tmp / "cluster.log", "ab")
        self.head = self.start_head()
        self.agent = subprocess.Popen([PY, "-m", "spindle._agent", "--head", self.address, "--num-cpus", "3",
                                       "--node-ip", "127.0.0.1"], env=self.env, stdout=subprocess.DEVNULL,
                                      stderr=self.log)

    def start_head(self) -> subprocess.Popen[bytes]:
        argv = [PY, "-m", "spindle._head", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.storage is not None:
            argv += ["--storage", str(self.storage)]
        head = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=self.log)
        assert head.stdout is not None
        assert head.stdout.readline().startswith(b"SPINDLE_HEAD_PORT="), "the head did not start"
        return head

    def restart_head(self) -> None:
        self.head.send_signal(signal.SIGKILL)
        self.head.wait()
        self.head = self.start_head()

    def stop(self) -> None:
        for p in (self.agent, self.head):
            p.send_signal(signal.SIGTERM)
        for p in (self.agent, self.head):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.log.close()


@pytest.fixture(params=["sqlite", "memory"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, tmp_path / "head.db" if request.param == "sqlite" else None)
    try:
        yield c
    finally:
        c.stop()


DRIVER = """
import sys, spindle
from spindle._core import context
from spindle._proto import pb

spindle.init(address="{address}", namespace="app")
cw = context.core()

@spindle.remote
class Counter:
    def __init__(self): self.n = 0
    def incr(self):
        self.n += 1
        return self.n

def kv_get():
    r = cw.head().KvGet(pb.KvRequest(key="answer"), metadata=cw.md, timeout=30)
    return r.value.decode() if r.found else "<lost>"

{body}
"""


def _driver(cluster: Cluster, body: str) -> subprocess.Popen[str]:
    code = DRIVER.format(address=cluster.address, body=textwrap.dedent(body))
    return subprocess.Popen([PY, "-c", code], env=cluster.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _line(stream: IO[str] | None) -> str:
    assert stream is not None
    return stream.readline().strip()


def _expect(driver: subprocess.Popen[str], want: str) -> None:
    got = _line(driver.stdout)
    if got != want:
        driver.kill()
        _, err = driver.communicate(timeout=30)
        raise AssertionError(f"driver printed {got!r}, expected {want!r}; its stderr:\n{err}")


def _run(cluster: Cluster, body: str) -> list[str]:
    p = _driver(cluster, body)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return out.split()


def test_a_restarted_head_adopts_the_live_actors_and_the_driver_keeps_working(cluster: Cluster) -> None:
    driver = _driver(cluster, """
        keeper = Counter.options(name="keeper", lifetime="detached").remote()
        owned = Counter.options(name="owned").remote()
        print(spindle.get(keeper.incr.remote()), spindle.get(owned.incr.remote()), flush=True)
        cw.head().KvPut(pb.KvRequest(key="answer", value=b"42", overwrite=True), metadata=cw.md, timeout=30)
        print("ready", flush=True)
        sys.stdin.readline()
        print(spindle.get(keeper.incr.remote()), spindle.get(owned.incr.remote()), flush=True)
        print(spindle.get(spindle.get_actor("keeper").incr.remote()),
              spindle.get(spindle.get_actor("owned").incr.remote()), flush=True)
        print(spindle.get(Counter.remote().incr.remote()), kv_get(), flush=True)
        sys.stdin.readline()
    """)
    try:
        _expect(driver, "1 1")
        _expect(driver, "ready")
        cluster.restart_head()
        assert driver.stdin is not None
        driver.stdin.write("go\n")
        driver.stdin.flush()
        _expect(driver, "2 2")  # the handles it held keep working
        _expect(driver, "3 3")  # named actors are found again (from the agent's report)
        kv = "42" if cluster.storage is not None else "<lost>"
        _expect(driver, f"1 {kv}")  # new actors are placed; KV survives only with storage
        # another driver finds the detached actor by name, and sees the first driver's owned actor
        assert _run(cluster, 'print(spindle.get(spindle.get_actor("keeper").incr.remote()))') == ["4"]
    finally:
        driver.stdin.write("done\n")  # type: ignore[union-attr]
        driver.stdin.flush()  # type: ignore[union-attr]
        _, err = driver.communicate(timeout=60)
    assert driver.returncode == 0, err
    # the first driver re-attached its job, so its owned actor died with it, and only it
    gone = _run(cluster, """
        import time
        for _ in range(300):
            try:
                spindle.get_actor("owned")
            except ValueError:
                print("owned-gone")
                break
            time.sleep(0.1)
        print(spindle.get(spindle.get_actor("keeper").incr.remote()))
    """)
    assert gone == ["owned-gone", "5"]


def test_a_replaced_head_with_storage_recovers_named_actors_jobs_and_kv_of_a_lost_node(tmp_path: Path) -> None:
    """Even when the agent that ran an actor is gone too, the spec on disk lets the new head restart it."""
    c = Cluster(tmp_path, tmp_path / "head.db")
    try:
        out = _run(c, """
            a = Counter.options(name="phoenix", lifetime="detached", max_restarts=1).remote()
            print(spindle.get(a.incr.remote()))
            cw.head().KvPut(pb.KvRequest(key="answer", value=b"42", overwrite=True), metadata=cw.md, timeout=30)
            print(spindle.get_runtime_context().get_session_name())
        """)
        assert out[0] == "1"
        session = out[1]
        c.head.send_signal(signal.SIGKILL)
        c.head.wait()
        c.agent.send_signal(signal.SIGKILL)  # its node goes too (the worker follows its agent)
        c.agent.wait()
        c.head = c.start_head()
        c.agent = subprocess.Popen([PY, "-m", "spindle._agent", "--head", c.address, "--num-cpus", "3",
                                    "--node-ip", "127.0.0.1"], env=c.env, stdout=subprocess.DEVNULL, stderr=c.log)
        out = _run(c, """
            import time
            from spindle.exceptions import ActorUnavailableError
            a = spindle.get_actor("phoenix")
            for _ in range(600):  # calls made while it restarts fail fast (Ray's ActorUnavailableError)
                try:
                    n = spindle.get(a.incr.remote())
                    break
                except ActorUnavailableError:
                    time.sleep(0.1)
            print(n, kv_get())
            print(spindle.get_runtime_context().get_session_name())
        """)
        assert out == ["1", "42", session]  # restarted from its spec (state is new, like any actor restart);
        # the session is the one the storage names
    finally:
        c.stop()


def test_a_task_in_a_group_the_new_head_reloaded_before_its_node_came_back_runs_once_the_node_is_back(
        tmp_path: Path) -> None:
    """Between a head restart and its agents re-registering, the group is CREATED (from storage) with no address
    for its bundle's node: the driver must ask again, not keep that answer and wait forever."""
    c = Cluster(tmp_path, tmp_path / "head.db")
    driver = _driver(c, """
        from spindle.util import placement_group
        from spindle.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        @spindle.remote(num_cpus=2)
        def f():
            return "ran"

        pg = placement_group([{"CPU": 2}], strategy="STRICT_PACK")
        assert pg.wait(30)
        print("placed", flush=True)
        sys.stdin.readline()
        ref = f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
        print("submitted", flush=True)
        print(spindle.get(ref, timeout=60), flush=True)
    """)
    try:
        _expect(driver, "placed")
        c.agent.send_signal(signal.SIGSTOP)  # the node cannot re-register with the new head yet
        try:
            c.restart_head()
            assert driver.stdin is not None
            driver.stdin.write("go\n")
            driver.stdin.flush()
            _expect(driver, "submitted")
            time.sleep(2)  # the driver asks the new head where the bundle is: on a node it does not know yet
        finally:
            c.agent.send_signal(signal.SIGCONT)
        _expect(driver, "ran")
        _, err = driver.communicate(timeout=60)
        assert driver.returncode == 0, err
    finally:
        driver.kill()
        c.stop()


def _exercise(tables: Any) -> dict[str, dict[bytes, bytes]]:
    tables.put("actors", b"a", b"1")
    tables.put("actors", b"a", b"2")
    tables.put("kv", b"k", b"v")
    tables.put("named", b"n", b"a")
    tables.delete("named", b"n")
    tables.delete("named", b"never")
    return {t: tables.load(t) for t in ("actors", "kv", "named")}


def test_the_sqlite_and_memory_tables_behave_the_same_and_sqlite_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "head.db"
    expected = {"actors": {b"a": b"2"}, "kv": {b"k": b"v"}, "named": {}}
    assert _exercise(MemoryTables()) == expected
    db = SqliteTables(str(path))
    assert _exercise(db) == expected
    db.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = SqliteTables(str(path))
    assert {t: again.load(t) for t in ("actors", "kv", "named")} == expected
    again.close()
    with pytest.raises(ValueError):
        MemoryTables().put("nope", b"", b"")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(OSError, match="point --storage at a new file"):
        SqliteTables(str(garbage))


@pytest.mark.parametrize("storage", ["sqlite", "memory"])
def test_placement_groups_survive_a_head_restart(tmp_path: Path, storage: str) -> None:
    """With storage the group is reloaded; without, the new head adopts it from the agent's report."""
    c = Cluster(tmp_path, tmp_path / "head.db" if storage == "sqlite" else None)
    try:
        driver = _driver(c, """
            import time
            from spindle.util import placement_group, placement_group_table, remove_placement_group
            from spindle.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            @spindle.remote(num_cpus=2)
            def node():
                return spindle.get_runtime_context().get_node_id()

            pg = placement_group([{"CPU": 2}], strategy="STRICT_PACK", name="gang")
            assert pg.wait(30)
            where = placement_group_table(pg)["bundles_to_node_id"][0]
            in_pg = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
            print(spindle.get(node.options(scheduling_strategy=in_pg).remote()) == where, flush=True)
            sys.stdin.readline()
            # without storage the new head learns the group from the agent's re-registration: until then it has
            # no location for the bundle
            deadline = time.monotonic() + 60
            row = placement_group_table(pg)
            while not row["bundles_to_node_id"] and time.monotonic() < deadline:
                time.sleep(0.1)
                row = placement_group_table(pg)
            print(row["state"], row["bundles_to_node_id"].get(0) == where, flush=True)
            print(spindle.get(node.options(scheduling_strategy=in_pg).remote(), timeout=60) == where, flush=True)
            remove_placement_group(pg)

            @spindle.remote(num_cpus=3)
            def whole_node():
                return "all 3 CPUs free"

            print(spindle.get(whole_node.remote(), timeout=60).replace(" ", "-"), flush=True)
        """)
        _expect(driver, "True")
        c.restart_head()
        assert driver.stdin is not None
        driver.stdin.write("go\n")
        driver.stdin.flush()
        _expect(driver, "CREATED True")  # on the node that still holds the bundle
        _expect(driver, "True")  # tasks still run in the bundle
        _expect(driver, "all-3-CPUs-free")  # removing it through the new head released the agent's reservation
        _, err = driver.communicate(timeout=60)
        assert driver.returncode == 0, err
    finally:
        c.stop()
