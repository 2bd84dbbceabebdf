"""Ray's own job client and CLI, unchanged, against a Spindle head: ``ray.job_submission.JobSubmissionClient``
and ``ray job submit|status|logs|stop|delete|list`` from a real Ray install (tests/jobs/ray_venv.py), talking
to a real head. The token reaches Ray the way Ray's token auth passes it (RAY_AUTH_MODE=token with
RAY_AUTH_TOKEN, or ``--headers``), so what passes here is what a Ray user types.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.jobs.conftest import Head
from tests.jobs.ray_venv import INSTALL_TIMEOUT_S, ray_python

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT_S + 300)  # a fresh machine installs Ray first


@pytest.fixture(scope="module")
def ray_py() -> Path:
    return ray_python()


def ray_env(head: Head, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SPINDLE_"))}
    return {**env, "RAY_ADDRESS": head.url, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head.token,
            "NO_COLOR": "1", **extra}


ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Ran:
    returncode: int
    text: str  # stdout and stderr, colours stripped: Ray's CLI prints its status lines to either


def ray_cli(ray_py: Path, head: Head, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
    proc = subprocess.run([str(ray_py.parent / "ray"), "job", *args], env=env or ray_env(head), capture_output=True,
                          text=True, timeout=timeout)
    return Ran(proc.returncode, ANSI.sub("", proc.stdout + proc.stderr))


def ray_sdk(ray_py: Path, head: Head, code: str, timeout: float = 120) -> dict[str, object]:
    """Run ``code`` with Ray's client as ``client``; it sets ``out`` (JSON), which is returned."""
    prelude = ("import asyncio, json, time\nfrom ray.job_submission import JobSubmissionClient, JobStatus\n"
               "client = JobSubmissionClient()\nout = {}\n"
               "def wait(sid, until=('SUCCEEDED', 'FAILED', 'STOPPED')):\n"
               "    delay = 0.02\n"
               "    for _ in range(2000):\n"
               "        s = client.get_job_status(sid)\n"
               "        if str(s.value) in until:\n"
               "            return s\n"
               "        time.sleep(delay); delay = min(delay * 2, 0.5)\n"
               "    raise AssertionError(f'{sid} stayed {s}')\n")
    script = prelude + textwrap.dedent(code) + "\nprint('OUT=' + json.dumps(out, default=str))\n"
    proc = subprocess.run([str(ray_py), "-c", script], env=ray_env(head), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"Ray's client failed:\n{proc.stdout}\n{proc.stderr}"
    line = next(x for x in proc.stdout.splitlines() if x.startswith("OUT="))
    result: dict[str, object] = json.loads(line[4:])
    return result


def test_rays_client_submits_and_reads_status_info_logs_and_the_list(ray_py: Path, head: Head) -> None:
    out = ray_sdk(ray_py, head, """
        sid = client.submit_job(entrypoint="python -c \\"import os; print('hi from', os.environ['WHO'])\\"",
                                submission_id="ray-sdk-1", runtime_env={"env_vars": {"WHO": "ray's client"}},
                                metadata={"owner": "tests"}, entrypoint_num_cpus=1)
        out["sid"] = sid
        out["final"] = str(wait(sid).value)
        info = client.get_job_info(sid)
        out["info"] = {k: getattr(info, k) for k in ("submission_id", "entrypoint", "message", "driver_exit_code",
                                                     "start_time", "end_time", "metadata", "runtime_env")}
        out["type"] = str(info.type.value)
        out["logs"] = client.get_job_logs(sid)
        out["listed"] = [j.submission_id for j in client.list_jobs()]
        out["listed_types"] = sorted({type(j).__name__ for j in client.list_jobs()})
    """)
    assert out["sid"] == "ray-sdk-1" and out["final"] == "SUCCEEDED" and out["type"] == "SUBMISSION"
    info = out["info"]
    assert isinstance(info, dict)
    assert info["message"] == "Job finished successfully." and info["driver_exit_code"] == 0
    assert info["metadata"] == {"owner": "tests"} and info["runtime_env"] == {"env_vars": {"WHO": "ray's client"}}
    assert 0 < info["start_time"] <= info["end_time"]
    assert out["logs"] == "hi from ray's client\n"
    assert "ray-sdk-1" in out["listed"] and out["listed_types"] == ["JobDetails"]  # type: ignore[operator]


def test_rays_client_tails_logs_as_they_are_written_and_stops_and_deletes(ray_py: Path, head: Head) -> None:
    out = ray_sdk(ray_py, head, """
        sid = client.submit_job(entrypoint="python -c \\"import time\\nfor i in range(3): print('line', i, "
                                "flush=True); time.sleep(0.2)\\"")
        async def tail(sid):
            return "".join([chunk async for chunk in client.tail_job_logs(sid)])
        out["tailed"] = asyncio.run(tail(sid))
        out["tail_status"] = str(client.get_job_status(sid).value)
        long = client.submit_job(entrypoint="python -c \\"import time; print('up', flush=True); time.sleep(300)\\"")
        wait(long, until=("RUNNING",))
        try:
            client.delete_job(long)
        except RuntimeError as e:
            out["delete_running"] = str(e)
        out["stopped"] = client.stop_job(long)
        out["stop_status"] = str(wait(long).value)
        out["stopped_again"] = client.stop_job(long)
        out["deleted"] = client.delete_job(long)
        try:
            client.get_job_info(long)
        except RuntimeError as e:
            out["after_delete"] = str(e)
        out["listed"] = [j.submission_id for j in client.list_jobs()]
    """)
    assert out["tailed"] == "line 0\nline 1\nline 2\n" and out["tail_status"] == "SUCCEEDED"
    assert "400" in str(out["delete_running"]) and "non-terminal state RUNNING" in str(out["delete_running"])
    assert out["stopped"] is True and out["stop_status"] == "STOPPED" and out["stopped_again"] is False
    assert out["deleted"] is True
    assert "404" in str(out["after_delete"]) and "does not exist" in str(out["after_delete"])


def test_rays_client_uploads_working_dir_and_py_modules(ray_py: Path, head: Head, tmp_path: Path) -> None:
    wd, mods = tmp_path / "project", tmp_path / "libs" / "shapes"
    wd.mkdir()
    mods.mkdir(parents=True)
    (wd / "main.py").write_text("import helper, shapes\nprint(helper.GREETING, shapes.SIDES)\n")
    (wd / "helper.py").write_text("GREETING = 'from the working_dir'\n")
    (wd / "big.bin").write_bytes(b"x" * 1000)
    (mods / "__init__.py").write_text("SIDES = 4\n")
    out = ray_sdk(ray_py, head, f"""
        sid = client.submit_job(entrypoint="python main.py && ls", runtime_env={{"working_dir": {str(wd)!r},
                                "py_modules": [{str(mods)!r}], "excludes": ["*.bin"]}})
        out["final"] = str(wait(sid).value)
        out["logs"] = client.get_job_logs(sid)
        out["runtime_env"] = client.get_job_info(sid).runtime_env
    """)
    assert out["final"] == "SUCCEEDED", out["logs"]
    assert str(out["logs"]).splitlines() == ["from the working_dir 4", "helper.py", "main.py"]  # big.bin excluded
    env = out["runtime_env"]
    assert isinstance(env, dict)
    assert str(env["working_dir"]).startswith("gcs://_ray_pkg_") and str(env["py_modules"][0]).startswith("gcs://")


def test_ray_job_cli_submits_follows_and_manages_jobs(ray_py: Path, head: Head, tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("import os, sys\nprint('cli job with', os.environ['COLOUR'])\n"
                                     "sys.exit(int(sys.argv[1]))\n")
    ok = ray_cli(ray_py, head, "submit", "--submission-id", "ray-cli-ok", "--working-dir", str(tmp_path),
                 "--runtime-env-json", '{"env_vars": {"COLOUR": "teal"}}', "--", "python", "job.py", "0")
    assert ok.returncode == 0, ok.text
    assert "cli job with teal" in ok.text and "Job 'ray-cli-ok' succeeded" in ok.text
    bad = ray_cli(ray_py, head, "submit", "--working-dir", str(tmp_path), "--", "python", "job.py", "3")
    assert bad.returncode == 1 and re.search(r"Job 'spindlesubmit_\w+' failed", bad.text), bad.text

    status = ray_cli(ray_py, head, "status", "ray-cli-ok")
    assert status.returncode == 0 and "Job 'ray-cli-ok' succeeded" in status.text
    logs = ray_cli(ray_py, head, "logs", "ray-cli-ok")
    assert logs.returncode == 0 and "cli job with teal" in logs.text

    started = ray_cli(ray_py, head, "submit", "--no-wait", "--submission-id", "ray-cli-long", "--", "python", "-c",
                      "import time; print('waiting', flush=True); time.sleep(300)")
    assert started.returncode == 0 and "ray job stop ray-cli-long" in started.text
    follow = subprocess.Popen([str(ray_py.parent / "ray"), "job", "logs", "--follow", "ray-cli-long"],
                              env=ray_env(head), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listed = ray_cli(ray_py, head, "list")
        assert listed.returncode == 0 and "submission_id='ray-cli-long'" in listed.text
        stopped = ray_cli(ray_py, head, "stop", "ray-cli-long")  # waits until the job has stopped
        assert stopped.returncode == 0 and "Job 'ray-cli-long' was stopped" in stopped.text
        followed, followed_err = follow.communicate(timeout=120)
    finally:
        follow.kill()
    assert follow.returncode == 0 and "waiting" in followed + followed_err  # the follow ended with the job
    deleted = ray_cli(ray_py, head, "delete", "ray-cli-long")
    assert deleted.returncode == 0 and "Job 'ray-cli-long' deleted successfully" in deleted.text
    gone = ray_cli(ray_py, head, "status", "ray-cli-long")
    assert gone.returncode != 0 and "Job ray-cli-long does not exist" in gone.text


def test_ray_job_cli_passes_the_token_as_a_header_and_is_refused_without_it(ray_py: Path, head: Head) -> None:
    env = {**ray_env(head), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_AUTH_TOKEN")
    refused = ray_cli(ray_py, head, "list", env=env)
    assert refused.returncode != 0 and "Unauthorized" in refused.text and "Bearer" in refused.text
    header = json.dumps({"Authorization": f"Bearer {head.token}"})
    listed = ray_cli(ray_py, head, "list", "--headers", header, env=env)
    assert listed.returncode == 0, listed.text
