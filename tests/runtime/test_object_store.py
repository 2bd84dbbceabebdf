"""The object store's lifecycle with real processes: a memory budget, spilling to disk and back,
a full store reported as ObjectStoreFullError, and nothing left behind by writers, drivers or sessions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import spindle
from spindle import _sessions, _store
from spindle._core import context

PY = sys.executable
MiB = 1 << 20


def run_driver(code: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def last_json(out: subprocess.CompletedProcess[str]) -> Any:
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_until(pred: Any, timeout: float = 30.0) -> bool:
    deadline, delay = time.monotonic() + timeout, 0.05
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return bool(pred())


def store_files(node_id: str) -> dict[str, int]:
    """This node's files under /dev/shm (name after the node prefix -> size)."""
    prefix = os.path.basename(_store.store_prefix(node_id))
    out = {}
    for name in os.listdir(_store.SHM_DIR):
        if name.startswith(prefix):
            try:
                out[name[len(prefix):]] = os.stat(os.path.join(_store.SHM_DIR, name)).st_size
            except FileNotFoundError:
                pass
    return out


def object_bytes(node_id: str) -> int:
    """Bytes of published objects in shared memory (not the lock, spare or partial files)."""
    return sum(size for name, size in store_files(node_id).items()
               if "." not in name and not name.startswith(("spare", "lock")))


@pytest.fixture()
def tmpfs(tmp_path: Any) -> Iterator[str]:
    """A 40 MiB tmpfs: a disk that fills up for real."""
    path = str(tmp_path / "small-disk")
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


@pytest.fixture(scope="module")
def small_store() -> Iterator[str]:
    """An embedded cluster whose store holds 64 MiB; yields its node id."""
    spindle.init(num_cpus=2, object_store_memory=64 * MiB)
    try:
        yield context.core().node_id
    finally:
        spindle.shutdown()


def spill_dir_of(node_id: str) -> str:
    with open(_store.store_prefix(node_id) + "lock") as f:
        return f.read().strip()


def test_a_put_loop_far_above_object_store_memory_spills_and_every_object_stays_readable(small_store: str) -> None:
    refs, peak = [], 0
    for i in range(24):  # 192 MiB through a 64 MiB store
        refs.append(spindle.put(np.full(8 * MiB, i, dtype=np.uint8)))
        peak = max(peak, object_bytes(small_store))
    assert peak <= 64 * MiB
    spilled = [n for n in os.listdir(spill_dir_of(small_store)) if "." not in n]
    assert len(spilled) >= 24 - 8
    for i, ref in enumerate(refs):
        value = spindle.get(ref)
        assert value.shape == (8 * MiB,) and value[0] == i and value[-1] == i
        del value
    del refs, ref
    assert wait_until(lambda: object_bytes(small_store) == 0 and not os.listdir(spill_dir_of(small_store)))


def test_many_medium_puts_on_credit_stay_within_the_limit_and_are_freed(small_store: str) -> None:
    refs, peak = [], 0
    for i in range(160):  # 160 MiB of 1 MiB objects: most written on credit, reported afterwards
        refs.append(spindle.put(np.full(MiB, i % 250, dtype=np.uint8)))
        peak = max(peak, object_bytes(small_store))
    assert peak <= 64 * MiB
    assert all(int(spindle.get(r)[-1]) == i % 250 for i, r in enumerate(refs))
    del refs
    assert wait_until(lambda: object_bytes(small_store) == 0 and not os.listdir(spill_dir_of(small_store)))


def test_the_budget_and_its_use_show_as_the_object_store_memory_resource(small_store: str) -> None:
    assert spindle.cluster_resources()["object_store_memory"] == 64 * MiB
    ref = spindle.put(np.ones(16 * MiB, dtype=np.uint8))
    assert wait_until(lambda: spindle.available_resources().get("object_store_memory", 0) <= 48 * MiB)
    del ref
    assert wait_until(lambda: spindle.available_resources().get("object_store_memory", 0) == 64 * MiB)


def test_reading_a_spilled_object_restores_it_into_memory(small_store: str) -> None:
    refs = [spindle.put(np.full(8 * MiB, i, dtype=np.uint8)) for i in range(12)]
    first = refs[0].hex()
    spill = os.path.join(spill_dir_of(small_store), first)
    assert os.path.exists(spill) and first not in store_files(small_store)
    assert spindle.get(refs[0])[123] == 0
    assert first in store_files(small_store) and not os.path.exists(spill)


def test_task_results_above_the_limit_spill_and_stay_readable(small_store: str) -> None:
    @spindle.remote
    def block(i: int) -> np.ndarray:
        return np.full(10 * MiB, i, dtype=np.uint8)

    refs = [block.remote(i) for i in range(12)]
    assert [int(spindle.get(r)[-1]) for r in refs] == list(range(12))
    assert object_bytes(small_store) <= 64 * MiB


def test_a_full_disk_gives_object_store_full_error_with_sizes_and_leaves_no_partial_file(tmpfs: str) -> None:
    info = last_json(run_driver(f"""
        import json, os, numpy as np, spindle
        from spindle._core import context
        from spindle.exceptions import ObjectStoreFullError, RayTaskError
        spindle.init(num_cpus=1, object_store_memory=32 << 20, _system_config={{"object_spilling_config": json.dumps(
            {{"type": "filesystem", "params": {{"directory_path": {tmpfs!r}}}}})}})
        kept, error = [], None
        try:
            for i in range(40):
                kept.append(spindle.put(np.full(6 << 20, i, dtype=np.uint8)))
        except ObjectStoreFullError as e:
            error = str(e)

        @spindle.remote
        def big():
            return np.ones(6 << 20, dtype=np.uint8)

        try:
            spindle.get(big.remote())
            task_error = None
        except ObjectStoreFullError as e:
            task_error = [type(e).__name__, isinstance(e, RayTaskError), str(e)]
        node = context.core().node_id
        spill = [os.path.join(r, n) for r, _, ns in os.walk({tmpfs!r}) for n in ns]
        ok_all = all(int(spindle.get(r)[7]) == i for i, r in enumerate(kept))
        del kept
        import time; time.sleep(0.5)
        after = spindle.get(spindle.put(np.ones(6 << 20, dtype=np.uint8)))[0] == 1
        print(json.dumps({{"error": error, "task_error": task_error, "node": node, "spill": spill,
                          "ok_all": ok_all, "after": bool(after)}}))
        spindle.shutdown()
    """))
    assert info["error"] is not None, "the put loop never filled memory and disk"
    assert "MiB" in info["error"] and "32.0 MiB in memory" in info["error"] and "object_store_memory" in info["error"]
    assert "No space left" not in info["error"]
    assert info["task_error"] is not None and info["task_error"][:2] == ["ObjectStoreFullError", False]
    assert not [p for p in info["spill"] if p.endswith(".tmp")]
    assert not [n for n in store_files(info["node"]) if n.endswith(".tmp")]
    assert info["ok_all"] and info["after"]


def test_a_sigkilled_driver_s_objects_are_freed(small_store: str) -> None:
    cw = context.core()
    proc = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import sys, time, numpy as np, spindle
        spindle.init(address=sys.argv[1])
        refs = [spindle.put(np.ones(4 << 20, dtype=np.uint8)) for _ in range(3)]
        print(" ".join(r.hex() for r in refs), flush=True)
        time.sleep(600)
    """), cw.head_address], stdout=subprocess.PIPE, text=True, env={**os.environ, "SPINDLE_TOKEN": cw.token})
    try:
        assert proc.stdout is not None
        oids = proc.stdout.readline().split()
        assert len(oids) == 3 and all(o in store_files(small_store) for o in oids)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_until(lambda: not any(o in store_files(small_store) for o in oids))
    finally:
        proc.kill()
        proc.wait()


def test_a_driver_that_exits_cleanly_frees_the_objects_it_still_referenced(small_store: str) -> None:
    cw = context.core()
    out = run_driver(f"""
        import numpy as np, spindle
        spindle.init(address={cw.head_address!r})
        kept = [spindle.put(np.ones(4 << 20, dtype=np.uint8)) for _ in range(2)]
        print(" ".join(r.hex() for r in kept))
    """, SPINDLE_TOKEN=cw.token)
    assert out.returncode == 0, out.stderr
    oids = out.stdout.split()
    assert len(oids) == 2
    assert wait_until(lambda: not any(o in store_files(small_store) for o in oids))


def test_a_writer_killed_mid_write_leaves_no_partial_file(small_store: str) -> None:
    path = _store.object_path(small_store, os.urandom(20))
    proc = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import sys, time
        from spindle import _sessions, _store
        def chunks():
            yield b"x" * (1 << 20)
            print("writing", flush=True)
            time.sleep(600)
        _store.write_stream(sys.argv[1], chunks())
    """), path], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        tmp = f"{path}.{proc.pid}.tmp"
        assert os.path.exists(tmp)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_until(lambda: not os.path.exists(tmp))
        assert not os.path.exists(path)
    finally:
        proc.kill()
        proc.wait()


def test_a_finished_session_leaves_nothing_in_shm_and_only_logs_in_its_directory() -> None:
    before = set(os.listdir(_store.SHM_DIR))
    info = last_json(run_driver("""
        import json, numpy as np, spindle
        from spindle._core import api, context
        spindle.init(num_cpus=1, object_store_memory=16 << 20)
        refs = [spindle.put(np.ones(4 << 20, dtype=np.uint8)) for _ in range(10)]

        @spindle.remote
        def f(x):
            return x * 2

        spindle.get([f.remote(r) for r in refs[:3]])
        info = {"node": context.core().node_id, "session": api._state["local"].session_dir}
        spindle.shutdown()
        print(json.dumps(info))
    """))
    ours = [n for n in set(os.listdir(_store.SHM_DIR)) - before if n.startswith(f"spindle-{info['node']}")]
    assert ours == []
    # the logs, and the session's record of its processes (what `spindle stop` reads): no spilled objects
    assert set(os.listdir(info["session"])) <= {"logs", _sessions.PROCESSES}


def test_a_tiny_shm_caps_the_default_store_says_so_in_the_log_and_the_rest_spills(tmpfs: str) -> None:
    info = last_json(run_driver("""
        import json, numpy as np, spindle
        from spindle._core import api
        spindle.init(num_cpus=1)
        refs = [spindle.put(np.full(6 << 20, i, dtype=np.uint8)) for i in range(12)]
        ok = all(int(spindle.get(r)[-1]) == i for i, r in enumerate(refs))
        info = {"ok": ok, "session": api._state["local"].session_dir}
        spindle.shutdown()
        print(json.dumps(info))
    """, SPINDLE_SHM_DIR=tmpfs))  # 72 MiB of objects through a 40 MiB /dev/shm
    assert info["ok"]
    with open(os.path.join(info["session"], "logs", "agent.log")) as f:
        log = f.read()
    assert "the object store is limited to 38.0 MiB by the free space of" in log and "emptyDir" in log


def test_when_shm_is_smaller_than_object_store_memory_writes_fall_back_to_disk(tmpfs: str) -> None:
    info = last_json(run_driver("""
        import json, numpy as np, spindle
        from spindle._core import api

        @spindle.remote
        def block(i):
            return np.full(6 << 20, i, dtype=np.uint8)

        spindle.init(num_cpus=1, object_store_memory=200 << 20)
        refs = [spindle.put(np.full(6 << 20, i, dtype=np.uint8)) for i in range(8)]
        refs += [block.remote(i) for i in range(8, 12)]
        ok = all(int(spindle.get(r)[-1]) == i for i, r in enumerate(refs))
        info = {"ok": ok, "session": api._state["local"].session_dir}
        spindle.shutdown()
        print(json.dumps(info))
    """, SPINDLE_SHM_DIR=tmpfs))  # the budget allows 200 MiB, but the shm holds 40: ENOSPC, then disk
    assert info["ok"]
    with open(os.path.join(info["session"], "logs", "agent.log")) as f:
        assert "object_store_memory is 200.0 MiB but" in f.read()


def test_a_session_whose_agent_was_killed_still_leaves_no_spilled_object_behind() -> None:
    info = last_json(run_driver("""
        import json, os, signal, numpy as np, spindle
        from spindle import _store
        from spindle._core import api, context
        spindle.init(num_cpus=1, object_store_memory=16 << 20)
        refs = [spindle.put(np.ones(4 << 20, dtype=np.uint8)) for _ in range(10)]
        node = context.core().node_id
        with open(_store.store_prefix(node) + "lock") as f:
            spill = f.read().strip()
        spilled = len(os.listdir(spill))
        local = api._state["local"]
        agent = local.procs[-1]
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        spindle.shutdown()
        print(json.dumps({"node": node, "spill": spill, "spilled": spilled, "session": local.session_dir}))
    """))
    assert info["spilled"] > 0
    assert not os.path.exists(info["spill"])
    assert not store_files(info["node"])
