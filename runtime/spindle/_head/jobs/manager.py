"""Runs submitted jobs: one supervised entrypoint process per job, its log, its record.

Each job gets a supervisor thread that applies the runtime_env, starts the entrypoint in its own
process group (so stop reaches everything it spawned: SIGTERM, then SIGKILL after a grace period),
and records the outcome. Records are written to ``<jobs dir>/<id>/job.json`` on every change, so a
head restarted on the same directory still lists its jobs; a job that was running when the head
went away is marked FAILED with that reason instead of staying RUNNING forever.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from spindle import _runtime_env as shared_env
from spindle._head.jobs import placement as _placement
from spindle._head.jobs import runtime_env as _runtime_env
from spindle._head.jobs.requests import SubmitRequest
from spindle._packages import PackageStore
from spindle.job_submission.models import DriverInfo, JobDetails, JobStatus

log = logging.getLogger("spindle.head.jobs")

STOP_WAIT_S = float(os.environ.get("SPINDLE_JOB_STOP_WAIT_S", "3"))
LOG_TAIL_CHARS = 20_000


class JobError(Exception):
    """A request about a job that cannot be done; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class _Job:
    details: JobDetails
    directory: str
    proc: subprocess.Popen[bytes] | None = None
    stop_requested: bool = False

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, "driver.log")


def _now_ms() -> int:
    return int(time.time() * 1000)


# The entrypoint runs under a tiny launcher (the leader of the job's process group). It asks for SIGTERM
# when the head dies (PR_SET_PDEATHSIG) and then kills the whole group, so nothing a job started outlives
# its head (PDEATHSIG alone reaches only the direct child, not what the shell forks). On a stop it just
# waits: the group's SIGTERM reaches the shell too, and the launcher exits the way the shell did. A
# preexec_fn could not do this, and would force a plain fork() of the head, whose gRPC threads then print
# errors into the job's log from the child.
_LAUNCHER = """
import ctypes, os, signal, subprocess, sys
head = int(sys.argv[2])
def on_term(signum, frame):
    if os.getppid() != head:  # the head died
        os.killpg(0, signal.SIGKILL)
signal.signal(signal.SIGTERM, on_term)
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
except Exception:
    pass
if os.getppid() != head:
    os.killpg(0, signal.SIGKILL)
child = subprocess.Popen(['/bin/sh', '-c', sys.argv[1]])
while True:
    try:
        code = child.wait()
        break
    except InterruptedError:
        continue
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


class JobManager:
    def __init__(self, root: str, packages: PackageStore, cluster_env: dict[str, str],
                 node_ip: str = "127.0.0.1", fits: Callable[[dict[str, float]], str | None] | None = None,
                 stop_wait_s: float = STOP_WAIT_S):
        self.root = root
        self.packages = packages
        self.cluster_env = cluster_env
        self.node_ip = node_ip
        self.fits = fits
        self.stop_wait_s = stop_wait_s
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        os.makedirs(root, mode=0o700, exist_ok=True)
        self._load()

    # ------------------------------------------------------------------ records
    def _load(self) -> None:
        for name in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, name, "job.json")
            try:
                with open(path) as f:
                    details = JobDetails.from_json(json.load(f))
            except (OSError, ValueError, TypeError):
                continue
            if not details.status.is_terminal():
                details.status = JobStatus.FAILED
                details.error_type = "JOB_SUPERVISOR_LOST"
                details.message = "The head restarted while this job was pending or running; submit it again."
                details.end_time = _now_ms()
            job = _Job(details, os.path.join(self.root, name))
            self._jobs[details.submission_id or name] = job
            self._save(job)

    def _save(self, job: _Job) -> None:
        tmp = os.path.join(job.directory, ".job.json.tmp")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "w") as f:
            json.dump(job.details.to_json(), f)
        os.replace(tmp, os.path.join(job.directory, "job.json"))

    def _get(self, submission_id: str) -> _Job:
        job = self._jobs.get(submission_id)
        if job is None:
            raise JobError(404, f"Job {submission_id} does not exist.")
        return job

    def get(self, submission_id: str) -> JobDetails:
        with self._lock:
            return self._get(submission_id).details

    def list(self) -> list[JobDetails]:
        with self._lock:
            return [j.details for j in self._jobs.values()]

    # ------------------------------------------------------------------ submit
    def submit(self, req: SubmitRequest) -> str:
        details = JobDetails(
            submission_id=req.submission_id, status=JobStatus.PENDING, entrypoint=req.entrypoint,
            message="Job has not started yet.", start_time=_now_ms(), metadata=req.metadata,
            runtime_env=req.runtime_env, entrypoint_num_cpus=req.entrypoint_num_cpus,
            entrypoint_num_gpus=req.entrypoint_num_gpus, entrypoint_memory=req.entrypoint_memory,
            entrypoint_resources=req.entrypoint_resources)
        with self._lock:
            if req.submission_id in self._jobs:
                raise JobError(400, f"Job with submission_id {req.submission_id} already exists. Please use a "
                                    "different submission_id.")
            directory = os.path.join(self.root, req.submission_id)
            shutil.rmtree(directory, ignore_errors=True)
            os.makedirs(directory, mode=0o700)
            job = _Job(details, directory)
            os.close(os.open(job.log_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))  # private, like all logs
            self._jobs[req.submission_id] = job
            self._save(job)
        threading.Thread(target=self._supervise, args=(job,), daemon=True,
                         name=f"job-{req.submission_id}").start()
        return req.submission_id

    def _finish(self, job: _Job, status: JobStatus, message: str, error_type: str | None = None,
                exit_code: int | None = None) -> None:
        with self._lock:
            d = job.details
            if d.status.is_terminal():
                return  # stopped while it was being set up: the first ending stands
            d.status, d.message, d.error_type, d.driver_exit_code = status, message, error_type, exit_code
            d.end_time = _now_ms()
            self._save(job)
        log.info("job %s %s: %s", d.submission_id, status.value, message.splitlines()[0] if message else "")

    def _supervise(self, job: _Job) -> None:
        d = job.details
        resources = _placement.resources(d)
        if resources and not self._wait_for_a_fitting_node(job, resources):
            return  # stopped while pending
        try:
            if resources:
                prepared = _placement.prepare(d, self.packages, job.directory, self.cluster_env, _LAUNCHER, resources)
            else:
                prepared = _runtime_env.prepare(d.runtime_env or {}, self.packages, job.directory)
        except _runtime_env.RuntimeEnvSetupError as e:
            self._finish(job, JobStatus.FAILED, f"Failed to set up the job's runtime_env: {e}",
                         "RUNTIME_ENV_SETUP_FAILED")
            return
        env = {**os.environ, **self.cluster_env, **prepared.env, "PYTHONUNBUFFERED": "1",
               "SPINDLE_JOB_SUBMISSION_ID": d.submission_id or "",
               "SPINDLE_JOB_ENV_VARS": json.dumps(prepared.env)}
        worker_env = shared_env.worker_part(d.runtime_env or {})
        if worker_env:  # the job's tasks and actors run with its working_dir/py_modules/pip too, as in Ray
            env[shared_env.JOB_ENV_VAR] = json.dumps(worker_env)
        # `python` in the entrypoint is the cluster's own interpreter (the one that has spindle installed)
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
        if prepared.python_path:
            env["PYTHONPATH"] = os.pathsep.join(prepared.python_path + [p for p in [env.get("PYTHONPATH")] if p])
        with self._lock:
            if job.stop_requested:
                return  # stop() already recorded STOPPED
            try:
                with open(job.log_path, "ab") as out:
                    job.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER,
                                                 prepared.command or d.entrypoint, str(os.getpid())], env=env,
                                                cwd=prepared.cwd or job.directory, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as e:
                job.proc = None
                start_error: OSError | None = e
            else:
                start_error = None
                if resources:
                    d.message = (f"Waiting for the entrypoint resources {resources} on a node: the cluster has "
                                 "them, but they are in use.")
                else:
                    d.status, d.message = JobStatus.RUNNING, "Job is currently running."
                    d.driver_info = DriverInfo(id="", node_ip_address=self.node_ip, pid=str(job.proc.pid))
                self._save(job)
        if start_error is not None or job.proc is None:
            self._finish(job, JobStatus.FAILED, f"Failed to start the entrypoint: {start_error}",
                         "JOB_ENTRYPOINT_COMMAND_START_ERROR")
            return
        if resources:
            self._wait_placed(job, job.proc)
        code = job.proc.wait()
        if job.stop_requested:
            self._finish(job, JobStatus.STOPPED, "Job was intentionally stopped.", exit_code=code)
        elif code == 0:
            self._finish(job, JobStatus.SUCCEEDED, "Job finished successfully.", exit_code=0)
        else:
            tail = self._read_log(job)[-LOG_TAIL_CHARS:]
            self._finish(job, JobStatus.FAILED,
                         f"Job entrypoint command failed with exit code {code}, last available logs (truncated to "
                         f"{LOG_TAIL_CHARS:,} chars):\n{tail}", "JOB_ENTRYPOINT_COMMAND_ERROR", exit_code=code)

    def _wait_for_a_fitting_node(self, job: _Job, resources: dict[str, float]) -> bool:
        """PENDING, saying why, until some node could ever fit ``resources`` (as Ray); False if stopped meanwhile."""
        delay = 0.05
        while True:
            problem = self.fits(resources) if self.fits is not None else None
            with self._lock:
                if job.stop_requested or job.details.status.is_terminal():
                    return False
                if problem is None:
                    return True
                message = f"Job is pending: {problem}."
                if job.details.message != message:
                    job.details.message = message
                    self._save(job)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _wait_placed(self, job: _Job, proc: subprocess.Popen[bytes]) -> None:
        """RUNNING once the placed entrypoint has started on its node (see spindle._head.jobs.placed)."""
        path = _placement.placed_file(job.directory)
        delay = 0.01
        while proc.poll() is None:
            where = _placement.read_placed(path)
            if where is not None:
                with self._lock:
                    d = job.details
                    if not d.status.is_terminal():
                        d.status, d.message = JobStatus.RUNNING, "Job is currently running."
                        d.driver_info = DriverInfo(id="", node_ip_address=where["node_ip_address"],
                                                   pid=str(where["pid"]))
                        d.driver_node_id = where["node_id"]
                        self._save(job)
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    # ------------------------------------------------------------------ stop / delete
    def stop(self, submission_id: str) -> bool:
        """Stop a job; False if it had already ended. SIGTERM to its process group, SIGKILL after the grace."""
        with self._lock:
            job = self._get(submission_id)
            if job.details.status.is_terminal() or job.stop_requested:
                return False
            job.stop_requested = True
            proc = job.proc
        if proc is None:  # not started yet: it never will be
            self._finish(job, JobStatus.STOPPED, "Job was intentionally stopped.")
            return True
        self._signal_group(proc, signal.SIGTERM)

        def escalate() -> None:
            try:
                proc.wait(timeout=self.stop_wait_s)
            except subprocess.TimeoutExpired:
                log.info("job %s ignored SIGTERM for %.1fs: SIGKILL", submission_id, self.stop_wait_s)
            self._signal_group(proc, signal.SIGKILL)  # also reaches children left behind after the leader exited

        threading.Thread(target=escalate, daemon=True, name=f"job-stop-{submission_id}").start()
        return True

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def delete(self, submission_id: str) -> bool:
        with self._lock:
            job = self._get(submission_id)
            if not job.details.status.is_terminal():
                raise JobError(400, f"Attempted to delete job with id {submission_id}, but it is in a non-terminal "
                                    f"state {job.details.status.value}: stop it first.")
            del self._jobs[submission_id]
        shutil.rmtree(job.directory, ignore_errors=True)
        return True

    def shutdown(self) -> None:
        """The head is stopping: end every running entrypoint (they would lose their cluster anyway)."""
        with self._lock:
            procs = [j.proc for j in self._jobs.values() if j.proc is not None and j.proc.poll() is None]
            for j in self._jobs.values():
                j.stop_requested = True
        for p in procs:
            self._signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_wait_s
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            self._signal_group(p, signal.SIGKILL)
        shutil.rmtree(self.packages.root, ignore_errors=True)

    # ------------------------------------------------------------------ logs
    def _read_log(self, job: _Job) -> str:
        try:
            with open(job.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def logs(self, submission_id: str) -> str:
        with self._lock:
            job = self._get(submission_id)
        return self._read_log(job)

    async def tail(self, submission_id: str, poll_s: float = 0.1,
                   connected: Callable[[], bool] = lambda: True) -> AsyncIterator[str]:
        """The job's log as it is written, chunk by chunk, ending once the job has ended and all is read."""
        with self._lock:
            job = self._get(submission_id)
        pos = 0
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            ended = job.details.status.is_terminal()
            try:
                with open(job.log_path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read(1 << 20)
            except OSError:
                return  # deleted while tailing
            if chunk:
                pos += len(chunk)
                text = decoder.decode(chunk)
                if text:
                    yield text
                continue
            if ended or not connected():
                return
            await asyncio.sleep(poll_s)
