"""Job records outlive a head restart when the head has storage; a job that was running is then FAILED
with the reason, never left RUNNING (the SpindleJob submitter and `spindle job submit` see it end)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

TOKEN = "restart-jobs-token"


def start_head(tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    from spindle._rpc.net import free_port

    env = {**os.environ, "SPINDLE_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "spindle._head", "--host", "127.0.0.1", "--port", str(free_port()),
                             "--storage", str(tmp / "head.db"), "--dashboard-port", "0",
                             "--session-dir", str(tmp / name)],
                            env=env, stdout=subprocess.PIPE, stderr=open(tmp / f"{name}.log", "wb"))
    assert proc.stdout is not None
    announced: dict[str, str] = {}
    while "SPINDLE_DASHBOARD_PORT" not in announced:  # the head announces its ports one line each, this one last
        line = proc.stdout.readline().decode().strip()
        assert line, f"the head exited before announcing its job API port; see {tmp / f'{name}.log'}"
        key, _, value = line.partition("=")
        announced[key] = value
    return proc, f"http://127.0.0.1:{announced['SPINDLE_DASHBOARD_PORT']}"


def wait(url: str, sid: str, done: set[str]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        info: dict[str, object] = requests.get(f"{url}/api/jobs/{sid}", headers=AUTH, timeout=30).json()
        if info["status"] in done:
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.05)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_restarted_head_with_storage_keeps_finished_jobs_and_fails_the_running_one_whose_processes_died(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    head, url = start_head(tmp_path, "first")
    try:
        ok = requests.post(f"{url}/api/jobs/", json={"entrypoint": "echo done", "submission_id": "finished"},
                           headers=AUTH, timeout=30).json()["submission_id"]
        wait(url, ok, {"SUCCEEDED"})
        requests.post(f"{url}/api/jobs/", json={"entrypoint": "sleep 300 & echo child $!; wait",
                                                "submission_id": "long"}, headers=AUTH, timeout=30)
        wait(url, "long", {"RUNNING"})
        deadline = time.monotonic() + 30
        while not (logs := requests.get(f"{url}/api/jobs/long/logs", headers=AUTH, timeout=30).json()["logs"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(logs.split()[1])
    finally:
        head.send_signal(signal.SIGKILL)
        head.wait()
    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/status") as f:
                return "zombie" not in f.read()
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while alive(child):
        assert time.monotonic() < deadline, "a process the job started outlived its head"
        time.sleep(0.05)
    head, url = start_head(tmp_path, "second")
    try:
        long = requests.get(f"{url}/api/jobs/long", headers=AUTH, timeout=30).json()
        assert long["status"] == "FAILED" and long["error_type"] == "JOB_SUPERVISOR_LOST"
        assert "head restarted" in long["message"]
        finished = requests.get(f"{url}/api/jobs/finished", headers=AUTH, timeout=30).json()
        assert finished["status"] == "SUCCEEDED"
        assert requests.get(f"{url}/api/jobs/finished/logs", headers=AUTH, timeout=30).json()["logs"] == "done\n"
    finally:
        head.terminate()
        head.wait(timeout=30)
