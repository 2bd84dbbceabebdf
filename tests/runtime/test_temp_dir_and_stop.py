"""The per-user temp dir and `spindle stop`: nothing in a shared /tmp is trusted unless it is ours.

Real `spindle start` / `spindle stop` / driver processes; the hostile cases are planted the way
another local user would plant them (symlinks, foreign owners, open modes, forged records).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from spindle import _procs

PY = sys.executable
CLI = [PY, "-m", "spindle._cli"]
NOBODY = 65534


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SPINDLE_TEMP_DIR": str(root), **extra}
    env.pop("SPINDLE_ADDRESS", None)
    env.pop("SPINDLE_TOKEN", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_head(root: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "start", "--head", "--port", str(_free_port()), "--num-cpus", "1", "--node-ip",
                           "127.0.0.1"], env=_env(root, **extra), capture_output=True, text=True, timeout=120)


def _stop(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "stop", *args], env=_env(root), capture_output=True, text=True, timeout=120)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def _session_pids(root: Path) -> list[int]:
    pids = []
    for rec in root.glob("session_*/processes.json"):
        pids += [e["pid"] for e in json.loads(rec.read_text())["processes"]]
    return pids


def _alive(pid: int) -> bool:
    return _procs.info(pid) is not None


def _wait_gone(pids: list[int], timeout: float = 30) -> bool:
    deadline, delay = time.monotonic() + timeout, 0.02
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return not any(_alive(p) for p in pids)


def test_the_default_temp_dir_is_per_user_or_in_the_users_runtime_dir(tmp_path: Path) -> None:
    code = "from spindle import _sessions; print(_sessions.temp_root())"
    env = {k: v for k, v in os.environ.items() if k not in ("SPINDLE_TEMP_DIR", "XDG_RUNTIME_DIR")}
    out = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == os.path.join(tempfile.gettempdir(), f"spindle-{os.geteuid()}")
    out = subprocess.run([PY, "-c", code], env={**env, "XDG_RUNTIME_DIR": str(tmp_path)}, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == str(tmp_path / "spindle")


def test_sessions_logs_and_the_start_record_are_private(tmp_path: Path) -> None:
    root = tmp_path / "root"
    started = _start_head(root)
    assert started.returncode == 0, started.stderr
    try:
        assert _mode(root) == 0o700
        [session] = root.glob("session_2*")
        assert _mode(session) == 0o700 and _mode(session / "logs") == 0o700
        for log in (session / "logs").rglob("*"):  # files 0600, directories (e.g. jobs/) 0700
            assert _mode(log) == (0o700 if log.is_dir() else 0o600), log
        assert _mode(session / "processes.json") == 0o600
        record = root / "session_latest" / "address.json"
        assert _mode(record) == 0o600 and _mode(record.parent) == 0o700
        assert json.loads(record.read_text())["token"]
    finally:
        _stop(root)


def test_a_planted_symlink_as_the_temp_dir_is_refused_and_no_token_is_written(tmp_path: Path) -> None:
    target = tmp_path / "attacker"
    target.mkdir(mode=0o777)
    root = tmp_path / "root"
    root.symlink_to(target)
    out = _start_head(root)
    assert out.returncode != 0
    assert "symlink" in out.stderr and f"rm -rf {root}" in out.stderr and "SPINDLE_TEMP_DIR" in out.stderr
    assert list(target.iterdir()) == []


def test_a_temp_dir_owned_by_someone_else_or_writable_by_others_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(foreign, NOBODY, NOBODY)
        out = subprocess.run([PY, "-c", "import spindle; spindle.init(num_cpus=1)"], env=_env(foreign),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode != 0
        assert f"belongs to uid {NOBODY}" in out.stderr and "SPINDLE_TEMP_DIR" in out.stderr
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    out = _start_head(shared)
    assert out.returncode != 0 and "others can write" in out.stderr
    assert list(shared.iterdir()) == []


def test_init_auto_trusts_only_an_address_record_it_owns(tmp_path: Path) -> None:
    root = tmp_path / "root"
    latest = root / "session_latest"
    latest.mkdir(parents=True, mode=0o700)
    root.chmod(0o700)
    record = latest / "address.json"
    record.write_text(json.dumps({"address": "127.0.0.1:1", "token": "planted"}))
    code = "import spindle; spindle.init(address='auto')"
    record.chmod(0o644)
    out = subprocess.run([PY, "-c", code], env=_env(root), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "others can read or write" in out.stderr, out.stderr
    if os.geteuid() == 0:
        record.chmod(0o600)
        os.chown(record, NOBODY, NOBODY)
        out = subprocess.run([PY, "-c", code], env=_env(root), capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and f"belongs to uid {NOBODY}" in out.stderr, out.stderr
    record.unlink()
    record.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text(json.dumps({"address": "127.0.0.1:1", "token": "planted"}))
    out = subprocess.run([PY, "-c", code], env=_env(root), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "symlink" in out.stderr, out.stderr


def test_spindle_stop_stops_every_started_cluster_and_reports_what_it_stopped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for _ in range(2):
        out = _start_head(root)
        assert out.returncode == 0, out.stderr
    recorded = _session_pids(root)
    assert len(recorded) == 4 and all(_alive(p) for p in recorded)
    agents = [i for p in recorded if (i := _procs.info(p)) is not None and i.role() == "agent"]
    workers = [w.pid for a in agents for w in _procs.spindle_children(a)]
    assert len(agents) == 2 and workers
    out = _stop(root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("stopped head pid") == 2 and out.stdout.count("stopped agent pid") == 2, out.stdout
    assert f"Stopped {4 + len(workers)} Spindle process(es)." in out.stdout
    assert _wait_gone(recorded + workers)
    assert not (root / "session_latest" / "address.json").exists()
    again = _stop(root)
    assert again.returncode == 0 and "no Spindle process" in again.stdout


def test_spindle_stop_force_kills_at_once_and_leaves_embedded_clusters_alone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    driver = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import time, spindle
        spindle.init(num_cpus=1)
        print("up", flush=True)
        time.sleep(120)
    """)], env=_env(root), stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "up"
        embedded = _session_pids(root)
        assert _start_head(root).returncode == 0
        started = [p for p in _session_pids(root) if p not in embedded]
        out = _stop(root, "--force")
        assert out.returncode == 0 and "Stopped" in out.stdout, out.stdout + out.stderr
        assert _wait_gone(started, timeout=10)
        assert all(_alive(p) for p in embedded)
    finally:
        driver.kill()
        driver.wait()


def test_spindle_stop_never_signals_a_pid_from_a_record_it_cannot_trust(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    victim = subprocess.Popen(["sleep", "120"])
    spindle_looking = subprocess.Popen([PY, "-c", "import time; time.sleep(120)", "-m", "spindle._head"])
    try:
        forged = root / "session_20000101-000000_1_aaaa"
        forged.mkdir(mode=0o700)
        entries = [{"role": "head", "pid": p.pid, "start": _procs.start_ticks(p.pid)} for p in (victim, spindle_looking)]
        entries.append({"role": "agent", "pid": victim.pid, "start": _procs.start_ticks(victim.pid) + 1})
        (forged / "processes.json").write_text(json.dumps({"cli": True, "processes": entries}))
        (forged / "processes.json").chmod(0o600)
        readable = root / "session_20000101-000000_2_bbbb"
        readable.mkdir(mode=0o700)
        (readable / "processes.json").write_text(json.dumps({"cli": True, "processes": entries}))
        (readable / "processes.json").chmod(0o644)
        out = _stop(root)
        assert out.returncode == 0 and "no Spindle process" in out.stdout, out.stdout
        time.sleep(0.5)
        assert victim.poll() is None and spindle_looking.poll() is None
    finally:
        for p in (victim, spindle_looking):
            p.kill()
            p.wait()


def test_old_sessions_are_rotated_but_live_ones_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert _start_head(root).returncode == 0
    [live] = root.glob("session_2*")
    live = live.rename(root / "session_19990101-000000_1_live")  # the oldest name, but still running
    old = time.time() - 3600
    for i in range(12):
        d = root / f"session_20000101-0000{i:02d}_1_{i:04d}"
        (d / "logs").mkdir(parents=True, mode=0o700)
        os.utime(d, (old, old))
    os.utime(live, (old, old))
    out = subprocess.run([PY, "-c", "import spindle; spindle.init(num_cpus=1); spindle.shutdown()"],
                         env=_env(root, SPINDLE_KEEP_SESSIONS="5"), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    try:
        left = sorted(p.name for p in root.glob("session_*") if p.name != "session_latest")
        assert live.name in left
        assert [n for n in left if n.startswith("session_20000101")] == [f"session_20000101-0000{i:02d}_1_{i:04d}"
                                                                          for i in (8, 9, 10, 11)]
        assert len(left) == 6  # the live one, the newest four old ones, and the new session
    finally:
        assert "stopped head pid" in _stop(root).stdout
