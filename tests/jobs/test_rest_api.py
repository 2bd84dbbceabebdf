"""The Jobs REST API on a real head: Ray's paths and fields, the status machine, stop, delete, errors."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.jobs.conftest import Head

PY = sys.executable


def submit(head: Head, entrypoint: str, **extra: object) -> str:
    r = head.post("/api/jobs/", json={"entrypoint": entrypoint, **extra})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["job_id"] == body["submission_id"]
    return str(body["submission_id"])


def test_the_version_endpoint_answers_what_rays_client_checks(head: Head) -> None:
    body = head.get("/api/version").json()
    assert body["version"] == "2"
    major, minor = (int(x) for x in body["ray_version"].split(".")[:2])
    assert (major, minor) >= (1, 9)


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/version"), ("GET", "/api/jobs/"), ("POST", "/api/jobs/"), ("GET", "/api/jobs/x"),
    ("GET", "/api/jobs/x/logs"), ("GET", "/api/jobs/x/logs/tail"), ("POST", "/api/jobs/x/stop"),
    ("DELETE", "/api/jobs/x"), ("GET", "/api/packages/gcs/a.zip"), ("PUT", "/api/packages/gcs/a.zip"),
    ("GET", "/no/such/path"),
])
def test_every_endpoint_refuses_a_missing_or_wrong_token_with_a_json_error(head: Head, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": head.token}):
        r = requests.request(method, head.url + path, headers=headers, json={"entrypoint": "true"}, timeout=30)
        assert r.status_code == 401
        assert "Authorization: Bearer" in r.json()["error"]
    assert head.get("/api/jobs/").status_code == 200


def test_the_token_is_also_accepted_in_rays_proxy_header(head: Head) -> None:
    ok = requests.get(head.url + "/api/jobs/", headers={"X-Ray-Authorization": f"Bearer {head.token}"}, timeout=30)
    assert ok.status_code == 200
    wrong = requests.get(head.url + "/api/jobs/", headers={"X-Ray-Authorization": "Bearer wrong"}, timeout=30)
    assert wrong.status_code == 401


def test_a_job_goes_from_pending_through_running_to_succeeded_with_its_output(head: Head) -> None:
    sid = submit(head, f"{PY} -c \"import time; print('hello from the job'); time.sleep(1)\"",
                 metadata={"owner": "tests"})
    first = head.get(f"/api/jobs/{sid}").json()
    assert first["status"] in ("PENDING", "RUNNING")
    running = head.wait_for(sid, lambda i: i["status"] != "PENDING")
    assert running["status"] in ("RUNNING", "SUCCEEDED")
    info = head.wait_terminal(sid)
    assert info["status"] == "SUCCEEDED", info
    assert info["message"] == "Job finished successfully."
    assert info["driver_exit_code"] == 0 and info["type"] == "SUBMISSION"
    assert info["metadata"] == {"owner": "tests"}
    assert info["start_time"] <= info["end_time"]
    assert head.get(f"/api/jobs/{sid}/logs").json()["logs"] == "hello from the job\n"
    assert sid in [j["submission_id"] for j in head.get("/api/jobs/").json()]


def test_a_failing_entrypoint_is_failed_with_its_exit_code_and_last_logs(head: Head) -> None:
    sid = submit(head, f"{PY} -c \"import sys; print('about to fail'); sys.exit(3)\"")
    info = head.wait_terminal(sid)
    assert info["status"] == "FAILED" and info["driver_exit_code"] == 3
    assert info["error_type"] == "JOB_ENTRYPOINT_COMMAND_ERROR"
    assert "exit code 3" in info["message"] and "about to fail" in info["message"]


def test_the_driver_joins_the_cluster_and_runs_tasks_with_the_jobs_env_vars(head: Head) -> None:
    script = ("import os, spindle; spindle.init(); "
              "f = spindle.remote(lambda: os.environ.get('JOB_FLAVOUR')); "
              "print('task saw', spindle.get(f.remote()), 'driver saw', os.environ['JOB_FLAVOUR'])")
    sid = submit(head, f"{PY} -c \"{script}\"", runtime_env={"env_vars": {"JOB_FLAVOUR": "lemon"}})
    info = head.wait_terminal(sid)
    assert info["status"] == "SUCCEEDED", info["message"]
    assert "task saw lemon driver saw lemon" in head.get(f"/api/jobs/{sid}/logs").json()["logs"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def _child_pid(head: Head, sid: str) -> int:
    deadline = time.monotonic() + 30
    while True:
        for line in head.get(f"/api/jobs/{sid}/logs").json()["logs"].splitlines():
            if line.startswith("child "):
                return int(line.split()[1])
        assert time.monotonic() < deadline, "the job never printed its child's pid"
        time.sleep(0.05)


def test_stop_ends_the_whole_process_group_and_the_job_is_stopped(head: Head) -> None:
    sid = submit(head, "sleep 300 & echo child $!; wait")
    child = _child_pid(head, sid)
    assert head.post(f"/api/jobs/{sid}/stop").json() == {"stopped": True}
    info = head.wait_terminal(sid)
    assert info["status"] == "STOPPED" and info["message"] == "Job was intentionally stopped."
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the entrypoint's child survived the stop"
        time.sleep(0.05)
    assert head.post(f"/api/jobs/{sid}/stop").json() == {"stopped": False}


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(head: Head) -> None:
    script = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "print('child', __import__('os').getpid(), flush=True); time.sleep(300)")
    sid = submit(head, f"exec {PY} -c \"{script}\"")
    pid = _child_pid(head, sid)
    head.post(f"/api/jobs/{sid}/stop")
    info = head.wait_terminal(sid, timeout=30)
    assert info["status"] == "STOPPED"
    assert info["driver_exit_code"] == -signal.SIGKILL
    assert not _alive(pid)


def test_delete_refuses_a_running_job_and_removes_an_ended_one(head: Head) -> None:
    sid = submit(head, "sleep 300")
    r = requests.delete(f"{head.url}/api/jobs/{sid}", headers=head.auth, timeout=30)
    assert r.status_code == 400 and "non-terminal" in r.json()["error"]
    head.post(f"/api/jobs/{sid}/stop")
    head.wait_terminal(sid)
    r = requests.delete(f"{head.url}/api/jobs/{sid}", headers=head.auth, timeout=30)
    assert r.status_code == 200 and r.json() == {"deleted": True}
    assert head.get(f"/api/jobs/{sid}").status_code == 404
    assert sid not in [j["submission_id"] for j in head.get("/api/jobs/").json()]


def test_an_unknown_id_is_a_404_everywhere(head: Head) -> None:
    for r in (head.get("/api/jobs/nope"), head.get("/api/jobs/nope/logs"), head.post("/api/jobs/nope/stop"),
              requests.delete(f"{head.url}/api/jobs/nope", headers=head.auth, timeout=30),
              head.get("/api/jobs/nope/logs/tail")):
        assert r.status_code == 404
        assert r.json()["error"] == "Job nope does not exist."


@pytest.mark.parametrize("body,expected", [
    ({}, "'entrypoint' must be a non-empty shell command"),
    ({"entrypoint": "  "}, "'entrypoint' must be a non-empty shell command"),
    ({"entrypoint": "true", "colour": "red"}, "unknown field(s) colour"),
    ({"entrypoint": "true", "runtime_env": {"conda": "env"}}, "'conda' is not supported"),
    ({"entrypoint": "true", "runtime_env": {"env_vars": {"A": 1}}}, "'env_vars' must map strings to strings"),
    ({"entrypoint": "true", "runtime_env": {"working_dir": "/home/me/proj"}}, "is a local path"),
    ({"entrypoint": "true", "runtime_env": []}, "runtime_env must be a JSON object"),
    ({"entrypoint": "true", "submission_id": "../etc"}, "submission_id '../etc' must be"),
    ({"entrypoint": "true", "entrypoint_num_cpus": -1}, "entrypoint_num_cpus must be a non-negative number"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_submissions_are_refused_with_a_clear_json_error_and_run_nothing(head: Head, body: object,
                                                                              expected: str) -> None:
    before = len(head.get("/api/jobs/").json())
    r = head.post("/api/jobs/", json=body)
    assert r.status_code == 400
    assert expected in r.json()["error"]
    assert len(head.get("/api/jobs/").json()) == before


@pytest.mark.parametrize("resources", [{"entrypoint_resources": {"unicorn": 1}}, {"entrypoint_num_cpus": 64}])
def test_a_job_whose_entrypoint_fits_no_node_stays_pending_saying_why_until_stopped(head: Head,
                                                                                     resources: dict) -> None:
    sid = submit(head, "echo never", **resources)
    info = head.wait_for(sid, lambda i: "no node in the cluster offers" in (i["message"] or ""))
    assert info["status"] == "PENDING"
    assert "entrypoint resources" in info["message"] and "add a node that has them" in info["message"]
    assert head.post(f"/api/jobs/{sid}/stop").json() == {"stopped": True}
    info = head.wait_terminal(sid)
    assert info["status"] == "STOPPED" and head.get(f"/api/jobs/{sid}/logs").json()["logs"] == ""


def test_an_entrypoint_with_resources_runs_on_a_node_that_fits_and_holds_them_while_it_runs(head: Head,
                                                                                           tmp_path: Path) -> None:
    script = ("import spindle, time\nspindle.init()\nprint('available CPU', spindle.available_resources().get('CPU'))\n"
              "print('task', spindle.get(spindle.remote(lambda: 6 * 7).remote()))\n")
    (tmp_path / "probe.py").write_text(script)
    from spindle.job_submission import JobSubmissionClient  # it uploads the working_dir

    sid = JobSubmissionClient(head.url, token=head.token).submit_job(
        entrypoint=f"{PY} probe.py", entrypoint_num_cpus=1, runtime_env={"working_dir": str(tmp_path)})
    info = head.wait_terminal(sid)
    logs = head.get(f"/api/jobs/{sid}/logs").json()["logs"]
    assert info["status"] == "SUCCEEDED", f"{info}\n{logs}"
    assert "available CPU 1.0\ntask 42\n" in logs  # of the head's 2 CPUs, the entrypoint holds one
    assert info["driver_node_id"] and info["driver_info"]["node_ip_address"] == "127.0.0.1"
    assert info["driver_exit_code"] == 0


def test_stopping_a_placed_entrypoint_ends_its_process_on_its_node(head: Head) -> None:
    sid = submit(head, f"{PY} -c \"import time; print('up', flush=True); time.sleep(300)\"", entrypoint_num_cpus=1)
    info = head.wait_for(sid, lambda i: i["status"] == "RUNNING")
    pid = int(info["driver_info"]["pid"])
    head.wait_for(sid, lambda i: head.get(f"/api/jobs/{sid}/logs").json()["logs"] == "up\n")
    assert head.post(f"/api/jobs/{sid}/stop").json() == {"stopped": True}
    assert head.wait_terminal(sid)["status"] == "STOPPED"
    deadline = time.monotonic() + 30
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"the placed entrypoint's launcher {pid} outlived the stop"
        time.sleep(0.1)


def test_a_body_that_is_not_json_is_refused(head: Head) -> None:
    r = requests.post(f"{head.url}/api/jobs/", data=b"entrypoint=true", timeout=30,
                      headers={**head.auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]


def test_a_duplicate_submission_id_is_refused_and_the_first_job_is_untouched(head: Head) -> None:
    sid = submit(head, "echo first", submission_id="dup-1")
    r = head.post("/api/jobs/", json={"entrypoint": "echo second", "submission_id": "dup-1"})
    assert r.status_code == 400 and "already exists" in r.json()["error"]
    info = head.wait_terminal(sid)
    assert info["entrypoint"] == "echo first" and info["status"] == "SUCCEEDED"


def test_an_unreachable_package_index_fails_the_job_with_the_fix_named(head: Head) -> None:
    sid = submit(head, "true", runtime_env={"pip": ["surely-not-installed-pkg==1.0"]})
    info = head.wait_terminal(sid, timeout=180)
    assert info["status"] == "FAILED" and info["error_type"] == "RUNTIME_ENV_SETUP_FAILED"
    assert "pip install surely-not-installed-pkg==1.0 failed" in info["message"]
    assert "PIP_INDEX_URL" in info["message"]


def test_a_package_that_was_never_uploaded_fails_the_job_saying_so(head: Head) -> None:
    sid = submit(head, "true", runtime_env={"working_dir": "gcs://_spindle_pkg_0123.zip"})
    info = head.wait_terminal(sid)
    assert info["status"] == "FAILED" and "was not uploaded to this head" in info["message"]


def test_package_endpoints_store_a_zip_once_and_refuse_bad_names_and_bad_archives(head: Head) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "hi")
    assert head.get("/api/packages/gcs/_test_pkg_1.zip").status_code == 404
    r = requests.put(f"{head.url}/api/packages/gcs/_test_pkg_1.zip", data=buf.getvalue(), headers=head.auth,
                     timeout=30)
    assert r.status_code == 200
    assert head.get("/api/packages/gcs/_test_pkg_1.zip").status_code == 200
    r = requests.put(f"{head.url}/api/packages/gcs/_test_pkg_2.zip", data=b"not a zip", headers=head.auth, timeout=30)
    assert r.status_code == 400 and "not a valid zip" in r.json()["error"]
    assert head.get("/api/packages/gcs/..zip").status_code == 400
    assert head.get("/api/packages/s3/x.zip").status_code == 400
