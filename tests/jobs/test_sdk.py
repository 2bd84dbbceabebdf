"""spindle.job_submission against a real head: Ray's method names, working_dir and py_modules uploads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from spindle.job_submission import JobDetails, JobStatus, JobSubmissionClient
from tests.jobs.conftest import Head

PY = sys.executable


@pytest.fixture
def client(head: Head, monkeypatch: pytest.MonkeyPatch) -> JobSubmissionClient:
    monkeypatch.setenv("SPINDLE_TOKEN", head.token)
    return JobSubmissionClient(head.url)


def wait(client: JobSubmissionClient, sid: str, timeout: float = 90) -> JobDetails:
    import time

    deadline, delay = time.monotonic() + timeout, 0.02
    while True:
        info = client.get_job_info(sid)
        if info.status.is_terminal():
            return info
        assert time.monotonic() < deadline, info
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def test_the_client_submits_lists_reads_logs_and_deletes_with_rays_method_names(client: JobSubmissionClient) -> None:
    sid = client.submit_job(entrypoint=f"{PY} -c \"print('sdk says hi')\"", submission_id="sdk-basic",
                            metadata={"team": "a"})
    assert sid == "sdk-basic"
    assert wait(client, sid).status == JobStatus.SUCCEEDED
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED and client.get_job_status(sid).is_terminal()
    assert client.get_job_logs(sid) == "sdk says hi\n"
    assert "sdk-basic" in [j.submission_id for j in client.list_jobs()]
    assert client.get_job_info(sid).metadata == {"team": "a"}
    assert client.stop_job(sid) is False
    assert client.delete_job(sid) is True
    with pytest.raises(RuntimeError, match="status code 404: Job sdk-basic does not exist"):
        client.get_job_info(sid)


def test_tail_job_logs_streams_the_output_in_order_and_ends_with_the_job(client: JobSubmissionClient) -> None:
    script = "import time\nfor i in range(5):\n    print('line', i, flush=True); time.sleep(0.1)"
    sid = client.submit_job(entrypoint=f"{PY} -c \"{script}\"")

    async def collect() -> str:
        return "".join([chunk async for chunk in client.tail_job_logs(sid)])

    text = asyncio.run(asyncio.wait_for(collect(), 60))
    assert text == "".join(f"line {i}\n" for i in range(5))
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED


def test_stop_job_stops_a_running_job(client: JobSubmissionClient) -> None:
    sid = client.submit_job(entrypoint="sleep 300")
    assert client.stop_job(sid) is True
    assert wait(client, sid).status == JobStatus.STOPPED


def test_a_local_working_dir_is_uploaded_once_and_is_the_jobs_cwd(client: JobSubmissionClient, head: Head,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("def greet():\n    return 'greetings from helper'\n")
    (tmp_path / "data.txt").write_text("payload-42")
    (tmp_path / "big.bin").write_bytes(b"x" * 1000)
    entry = f"{PY} -c \"import helper, os; print(helper.greet(), open('data.txt').read(), os.path.exists('big.bin'))\""
    env = {"working_dir": str(tmp_path), "excludes": ["*.bin"]}
    sid = client.submit_job(entrypoint=entry, runtime_env=env)
    info = wait(client, sid)
    assert info.status == JobStatus.SUCCEEDED, info.message
    assert client.get_job_logs(sid) == "greetings from helper payload-42 False\n"
    uri = info.runtime_env["working_dir"]  # type: ignore[index]
    assert uri.startswith("gcs://_spindle_pkg_")
    # same content: same name, already on the head, so a second submission uploads nothing
    assert head.get(f"/api/packages/gcs/{uri.split('://')[1]}").status_code == 200
    again = client.submit_job(entrypoint=entry, runtime_env=env)
    assert client.get_job_info(again).runtime_env["working_dir"] == uri  # type: ignore[index]
    assert wait(client, again).status == JobStatus.SUCCEEDED
    (tmp_path / "data.txt").write_text("payload-43")
    changed = client.submit_job(entrypoint=entry, runtime_env=env)
    assert client.get_job_info(changed).runtime_env["working_dir"] != uri  # type: ignore[index]
    assert wait(client, changed).status == JobStatus.SUCCEEDED
    assert "payload-43" in client.get_job_logs(changed)


def test_py_modules_are_importable_by_the_driver(client: JobSubmissionClient, tmp_path: Path) -> None:
    mod = tmp_path / "shinymod"
    mod.mkdir()
    (mod / "__init__.py").write_text("VALUE = 'shiny'\n")
    sid = client.submit_job(entrypoint=f"{PY} -c \"import shinymod; print(shinymod.VALUE)\"",
                            runtime_env={"py_modules": [str(mod)]})
    info = wait(client, sid)
    assert info.status == JobStatus.SUCCEEDED, info.message
    assert client.get_job_logs(sid) == "shiny\n"


def test_a_missing_working_dir_is_refused_before_anything_is_sent(client: JobSubmissionClient) -> None:
    before = len(client.list_jobs())
    with pytest.raises(ValueError, match="is not a directory"):
        client.submit_job(entrypoint="true", runtime_env={"working_dir": "/definitely/not/here"})
    assert len(client.list_jobs()) == before


def test_a_wrong_token_is_a_clear_error(head: Head, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDLE_TOKEN", "wrong")
    with pytest.raises(RuntimeError, match="401.*set SPINDLE_TOKEN"):
        JobSubmissionClient(head.url)


def test_an_address_with_nothing_listening_is_a_connection_error_naming_it() -> None:
    from spindle._rpc.net import free_port

    port = free_port()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        JobSubmissionClient(f"http://127.0.0.1:{port}")


def test_the_address_comes_from_spindle_dashboard_address(head: Head, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDLE_DASHBOARD_ADDRESS", head.url)
    monkeypatch.setenv("SPINDLE_TOKEN", head.token)
    assert JobSubmissionClient().get_address() == head.url


def test_init_starts_the_job_api_and_dashboard_and_says_where_unless_include_dashboard_is_false(tmp_path: Path) -> None:
    script = (
        "import spindle, sys\n"
        "spindle.init(num_cpus=1)\n"
        "from spindle.job_submission import JobSubmissionClient\n"
        "c = JobSubmissionClient()\n"
        "sid = c.submit_job(entrypoint='echo embedded')\n"
        "import time\n"
        "while not c.get_job_status(sid).is_terminal(): time.sleep(0.05)\n"
        "print('ADDR', c.get_address(), c.get_job_status(sid).value, c.get_job_logs(sid).strip())\n"
        "spindle.shutdown()\n"
        "spindle.init(num_cpus=1, include_dashboard=False)\n"
        "spindle.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPINDLE_")}
    out = subprocess.run([PY, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    addr = out.stdout.split("ADDR ")[1].split()[0]
    assert out.stdout.strip().endswith("SUCCEEDED embedded")
    assert out.stderr.count("Job API (Ray-compatible) at ") == 1
    assert f"Job API (Ray-compatible) at {addr}" in out.stderr
    assert out.stderr.count("View the dashboard at ") == 1
    assert f"View the dashboard at {addr}/#token=" in out.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(addr + "/api/version", timeout=5)
