"""`spindle job ...` against a real head: follows logs, exit code is the job's outcome, Ctrl-C detaches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.jobs.conftest import Head

PY = sys.executable
CLI = [PY, "-m", "spindle._cli", "job"]


def run(head: Head, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPINDLE_TOKEN": head.token}
    return subprocess.run([*CLI, args[0], "--address", head.url, *args[1:]], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_submit_follows_the_logs_and_exits_zero_when_the_job_succeeds(head: Head) -> None:
    out = run(head, "submit", "--submission-id", "cli-ok", "--", PY, "-c", "print('from the cli job')")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "from the cli job\n"
    assert "Job 'cli-ok' submitted successfully." in out.stderr
    assert "Job 'cli-ok' succeeded" in out.stderr


def test_submit_exits_one_when_the_job_fails_and_says_why(head: Head) -> None:
    out = run(head, "submit", "--", PY, "-c", "import sys; print('bad'); sys.exit(4)")
    assert out.returncode == 1
    assert "bad\n" in out.stdout
    assert "failed: Job entrypoint command failed with exit code 4" in out.stderr


def test_submit_with_working_dir_and_runtime_env_json(head: Head, tmp_path: object) -> None:
    from pathlib import Path

    d = Path(str(tmp_path))
    (d / "script.py").write_text("import os\nprint('script ran with', os.environ['COLOUR'])\n")
    out = run(head, "submit", "--working-dir", str(d), "--runtime-env-json", '{"env_vars": {"COLOUR": "teal"}}',
              "--", "python", "script.py")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "script ran with teal\n"


def test_status_logs_list_stop_and_delete(head: Head) -> None:
    out = run(head, "submit", "--no-wait", "--submission-id", "cli-long", "--", "sleep", "300")
    assert out.returncode == 0, out.stderr
    assert "spindle job stop cli-long" in out.stderr
    status = run(head, "status", "cli-long")
    assert status.returncode == 0 and "Status for job 'cli-long': " in status.stdout
    listing = run(head, "list")
    assert "cli-long" in listing.stdout and "sleep 300" in listing.stdout
    refused = run(head, "delete", "cli-long")
    assert refused.returncode == 1 and "non-terminal state" in refused.stderr
    stopped = run(head, "stop", "cli-long")
    assert stopped.returncode == 0 and "Job 'cli-long' is STOPPED." in stopped.stdout
    assert run(head, "logs", "cli-long").returncode == 0
    deleted = run(head, "delete", "cli-long")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    missing = run(head, "status", "cli-long")
    assert missing.returncode == 1 and "Job cli-long does not exist" in missing.stderr


def test_logs_follow_prints_until_the_job_ends(head: Head) -> None:
    run(head, "submit", "--no-wait", "--submission-id", "cli-follow", "--", PY, "-c",
        "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.2)")
    out = run(head, "logs", "--follow", "cli-follow")
    assert out.returncode == 0 and out.stdout == "0\n1\n2\n"


def test_ctrl_c_detaches_leaves_the_job_running_and_says_how_to_stop_it(head: Head) -> None:
    env = {**os.environ, "SPINDLE_TOKEN": head.token}
    proc = subprocess.Popen([*CLI, "submit", "--address", head.url, "--submission-id", "cli-detach", "--", PY, "-c",
                             "print('started', flush=True); import time; time.sleep(300)"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "keeps running" in err and f"spindle job stop cli-detach --address {head.url}" in err
    assert head.get("/api/jobs/cli-detach").json()["status"] == "RUNNING"
    head.post("/api/jobs/cli-detach/stop")
    assert head.wait_terminal("cli-detach")["status"] == "STOPPED"


def test_a_wrong_token_and_a_missing_entrypoint_are_clear_errors(head: Head) -> None:
    env = {**os.environ, "SPINDLE_TOKEN": "nope"}
    out = subprocess.run([*CLI, "list", "--address", head.url], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "401" in out.stderr and "SPINDLE_TOKEN" in out.stderr
    out = run(head, "submit")
    assert out.returncode == 2 and "no entrypoint" in out.stderr


@pytest.mark.parametrize("sub", ["submit", "status", "logs", "stop", "list", "delete"])
def test_every_job_command_has_help(sub: str) -> None:
    out = subprocess.run([*CLI, sub, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--address" in out.stdout


def test_a_single_entrypoint_argument_is_a_shell_command_line(head: Head) -> None:
    out = run(head, "submit", "--", "echo one && echo two")
    assert out.returncode == 0 and out.stdout == "one\ntwo\n"
