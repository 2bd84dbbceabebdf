"""The pure parts of job submission (request checks, runtime_env checks, package naming) and the
job manager's restart rule, with exact expectations."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import pytest

from spindle._head.jobs import requests as job_requests
from spindle._head.jobs import runtime_env
from spindle._head.jobs.manager import JobManager
from spindle._packages import PackageStore
from spindle.job_submission import JobStatus, packaging


def test_a_minimal_submission_gets_a_generated_id_and_defaults() -> None:
    req = job_requests.parse_submit({"entrypoint": "python x.py"})
    assert req.submission_id.startswith("spindlesubmit_") and len(req.submission_id) == 30
    assert (req.runtime_env, req.metadata, req.resources()) == ({}, {}, {})


def test_rays_deprecated_job_id_names_the_submission() -> None:
    assert job_requests.parse_submit({"entrypoint": "x", "job_id": "abc"}).submission_id == "abc"


def test_entrypoint_resources_combine_into_one_request() -> None:
    req = job_requests.parse_submit({"entrypoint": "x", "entrypoint_num_cpus": 1, "entrypoint_num_gpus": 0.5,
                                     "entrypoint_memory": 1024, "entrypoint_resources": {"special": 2}})
    assert req.resources() == {"special": 2.0, "CPU": 1, "GPU": 0.5, "memory": 1024.0}


@pytest.mark.parametrize("body,message", [
    ({"entrypoint": "x", "entrypoint_num_cpus": True}, "entrypoint_num_cpus must be a non-negative number"),
    ({"entrypoint": "x", "entrypoint_memory": 1.5}, "entrypoint_memory must be a non-negative integer"),
    ({"entrypoint": "x", "entrypoint_resources": {"CPU": 1}}, "must not name CPU"),
    ({"entrypoint": "x", "metadata": {"a": 1}}, "metadata must map strings to strings"),
    ({"entrypoint": "x", "submission_id": ""}, None),
])
def test_bad_fields_are_named(body: dict[str, object], message: str | None) -> None:
    if message is None:  # an empty id means "generate one", as in Ray
        assert job_requests.parse_submit(body).submission_id.startswith("spindlesubmit_")
        return
    with pytest.raises(ValueError, match=message):
        job_requests.parse_submit(body)


def test_rays_newer_fields_are_accepted_and_ignored() -> None:
    assert job_requests.parse_submit({"entrypoint": "x", "entrypoint_label_selector": {"a": "b"}}).entrypoint == "x"


@pytest.mark.parametrize("env,message", [
    ({"pip": "requirements.txt"}, "requirements file path is read by the client"),
    ({"pip": [""]}, "'pip' must be a list of requirement strings"),
    ({"pip": {"packages": ["ok"]}}, None),
    ({"py_modules": ["./local"]}, "must be a list of uploaded package URIs"),
    ({"uv": ["x"]}, "'uv' is not supported by Spindle"),
    ({"bogus": 1}, "unknown runtime_env field 'bogus'"),
])
def test_runtime_env_checks(env: dict[str, object], message: str | None) -> None:
    if message is None:
        assert runtime_env.validate(env) == env
        return
    with pytest.raises(ValueError, match=message):
        runtime_env.validate(env)


def test_a_package_name_depends_on_content_and_paths_not_on_times(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("A = 1\n")
    uri1, data1 = packaging.pack_directory(str(tmp_path))
    os.utime(tmp_path / "a.py", (1, 1))
    uri2, data2 = packaging.pack_directory(str(tmp_path))
    assert uri1 == uri2 and data1 == data2
    (tmp_path / "a.py").rename(tmp_path / "b.py")
    assert packaging.pack_directory(str(tmp_path))[0] != uri1
    with_parent, data = packaging.pack_directory(str(tmp_path), include_parent_dir=True)
    assert with_parent != packaging.pack_directory(str(tmp_path))[0]
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == [f"{tmp_path.name}/b.py"]


def test_default_excludes_leave_out_caches_and_vcs(tmp_path: Path) -> None:
    for rel in ("keep.py", ".git/HEAD", "__pycache__/x.pyc", "sub/keep.txt", "sub/skip.log"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    _, data = packaging.pack_directory(str(tmp_path), excludes=["*.log"])
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == ["keep.py", "sub/keep.txt"]


def test_an_archive_escaping_its_root_is_refused(tmp_path: Path) -> None:
    store = PackageStore(str(tmp_path / "pkgs"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    store.put("gcs", "evil.zip", buf.getvalue())
    with pytest.raises(ValueError, match="outside its root"):
        store.unpack("gcs://evil.zip")
    assert not (tmp_path / "evil.txt").exists()


def test_a_job_running_when_the_head_went_away_is_failed_on_restart_not_left_running(tmp_path: Path) -> None:
    store = PackageStore(str(tmp_path / "pkgs"))
    first = JobManager(str(tmp_path / "jobs"), store, cluster_env={})
    sid = first.submit(job_requests.parse_submit({"entrypoint": "sleep 300", "submission_id": "long"}))
    done = first.submit(job_requests.parse_submit({"entrypoint": "true", "submission_id": "short"}))
    deadline = time.monotonic() + 30
    while first.get(sid).status != JobStatus.RUNNING or not first.get(done).status.is_terminal():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        second = JobManager(str(tmp_path / "jobs"), store, cluster_env={})  # a head restarted on the same dir
        restarted = second.get(sid)
        assert restarted.status == JobStatus.FAILED and restarted.error_type == "JOB_SUPERVISOR_LOST"
        assert "head restarted" in (restarted.message or "")
        assert second.get(done).status == JobStatus.SUCCEEDED
    finally:
        first.shutdown()
