"""`spindle job ...`: submit, follow and manage jobs on a cluster's Jobs API (Ray's `ray job` commands).

`spindle job submit -- python script.py` follows the logs and exits with the job's outcome
(0 SUCCEEDED, 1 FAILED, 2 STOPPED); Ctrl-C detaches (the job keeps running) and says how to stop
it. The entrypoint after `--` is quoted word by word (`-- python -c "print(1)"` runs as typed); a
single argument is a shell command line (`-- "python a.py && python b.py"`). The address and
token resolve as in spindle.job_submission.client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import threading
import time
from typing import Any

EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 2}


def _client(args: argparse.Namespace) -> Any:
    from spindle.job_submission import JobSubmissionClient

    return JobSubmissionClient(args.address)


def _json_arg(value: str | None, flag: str) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise SystemExit(f"spindle job: {flag} is not valid JSON ({e})") from None


def _follow(client: Any, job_id: str) -> None:
    """Print the job's log as it comes until the job ends. The websocket runs on its own thread, so Ctrl-C
    detaches at once: in the main thread, asyncio turns the first SIGINT into a cancellation that the websocket's
    closing handshake can hold up (a busy head seen under CI load: no exit 30 s after Ctrl-C)."""
    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()

    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(tail())
        except BaseException as e:  # handed to the main thread
            failed.append(e)

    t = threading.Thread(target=run, daemon=True, name="spindle-job-logs")
    t.start()
    while t.is_alive():
        t.join(0.5)  # KeyboardInterrupt is raised here, in the main thread
    if failed:
        raise failed[0]


def _wait_terminal(client: Any, job_id: str, timeout_s: float = 60.0) -> Any:
    deadline, delay = time.monotonic() + timeout_s, 0.05
    while True:
        info = client.get_job_info(job_id)
        if info.status.is_terminal() or time.monotonic() > deadline:
            return info
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _outcome(job_id: str, info: Any) -> int:
    status = info.status.value
    line = f"Job '{job_id}' {status.lower()}"
    if status == "FAILED" and info.message:
        line += f": {info.message.splitlines()[0]}"
    print("-" * 40, file=sys.stderr)
    print(line, file=sys.stderr)
    return EXIT_CODES.get(status, 1)


def cmd_submit(args: argparse.Namespace) -> int:
    entrypoint = list(args.entrypoint)
    if entrypoint and entrypoint[0] == "--":
        entrypoint = entrypoint[1:]
    if not entrypoint:
        print("spindle job submit: no entrypoint: spindle job submit [options] -- python script.py", file=sys.stderr)
        return 2
    runtime_env = _json_arg(args.runtime_env_json, "--runtime-env-json") or {}
    if not isinstance(runtime_env, dict):
        print("spindle job submit: --runtime-env-json must be a JSON object", file=sys.stderr)
        return 2
    if args.working_dir:
        runtime_env["working_dir"] = args.working_dir
    client = _client(args)
    job_id = client.submit_job(
        entrypoint=entrypoint[0] if len(entrypoint) == 1 else shlex.join(entrypoint), submission_id=args.submission_id, runtime_env=runtime_env,
        metadata=_json_arg(args.metadata_json, "--metadata-json"), entrypoint_num_cpus=args.entrypoint_num_cpus,
        entrypoint_num_gpus=args.entrypoint_num_gpus, entrypoint_memory=args.entrypoint_memory,
        entrypoint_resources=_json_arg(args.entrypoint_resources, "--entrypoint-resources"))
    where = f" --address {client.get_address()}"
    print(f"Job '{job_id}' submitted successfully.", file=sys.stderr)
    if args.no_wait:
        print(f"  Follow its logs: spindle job logs {job_id} --follow{where}\n"
              f"  Its status:      spindle job status {job_id}{where}\n"
              f"  Stop it:         spindle job stop {job_id}{where}", file=sys.stderr)
        return 0
    print("Tailing logs until the job exits (Ctrl-C detaches; --no-wait does not follow):", file=sys.stderr,
          flush=True)
    try:
        _follow(client, job_id)
        return _outcome(job_id, _wait_terminal(client, job_id))
    except KeyboardInterrupt:
        print(f"\nDetached from job '{job_id}'; it keeps running. Stop it with: spindle job stop {job_id}{where}",
              file=sys.stderr)
        return 130


def cmd_status(args: argparse.Namespace) -> int:
    info = _client(args).get_job_info(args.job_id)
    print(f"Status for job '{args.job_id}': {info.status.value}")
    if info.message:
        print(f"Status message: {info.message}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    client = _client(args)
    if not args.follow:
        sys.stdout.write(client.get_job_logs(args.job_id))
        return 0
    try:
        _follow(client, args.job_id)
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    client = _client(args)
    if not client.stop_job(args.job_id):
        print(f"Job '{args.job_id}' had already ended ({client.get_job_status(args.job_id).value}).")
        return 0
    print(f"Requested stop of job '{args.job_id}'.")
    if args.no_wait:
        return 0
    info = _wait_terminal(client, args.job_id)
    print(f"Job '{args.job_id}' is {info.status.value}.")
    return 0 if info.status.is_terminal() else 1


def cmd_list(args: argparse.Namespace) -> int:
    jobs = _client(args).list_jobs()
    if args.json:
        print(json.dumps([j.to_json() for j in jobs], indent=2))
        return 0
    print(f"{'SUBMISSION ID':<34} {'STATUS':<10} {'START':<20} ENTRYPOINT")
    for j in sorted(jobs, key=lambda j: j.start_time or 0):
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((j.start_time or 0) / 1000))
        print(f"{j.submission_id or '':<34} {j.status.value:<10} {start:<20} {j.entrypoint}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _client(args).delete_job(args.job_id)
    print(f"Job '{args.job_id}' deleted.")
    return 0


def _run(fn: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except (RuntimeError, ConnectionError, ValueError) as e:
            print(f"spindle job {args.job_command}: {e}", file=sys.stderr)
            return 1
    return wrapped


def add_job_parser(sub: Any) -> None:
    job = sub.add_parser("job", help="submit and manage jobs (Ray-compatible Jobs API)",
                         description="Submit and manage jobs through a head's Jobs API (port 8265). The address is "
                                     "--address, else SPINDLE_DASHBOARD_ADDRESS, else the cluster started on this "
                                     "machine; the token is SPINDLE_TOKEN.")
    jsub = job.add_subparsers(dest="job_command", required=True)

    def command(name: str, fn: Any, help_text: str, with_id: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = jsub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--address", default=None, help="the job API, e.g. http://HEAD:8265")
        if with_id:
            p.add_argument("job_id", metavar="SUBMISSION_ID")
        p.set_defaults(fn=_run(fn))
        return p

    s = command("submit", cmd_submit, "submit a job and follow its logs (exit code: 0 succeeded, 1 failed, "
                                      "2 stopped)", with_id=False)
    s.add_argument("--working-dir", default=None, help="local directory uploaded and used as the job's cwd")
    s.add_argument("--runtime-env-json", default=None, help='runtime_env as JSON, e.g. \'{"env_vars": {"A": "1"}}\'')
    s.add_argument("--metadata-json", default=None, help="metadata as a JSON object of strings")
    s.add_argument("--submission-id", default=None, help="the job's id (default: generated)")
    s.add_argument("--entrypoint-num-cpus", type=float, default=None)
    s.add_argument("--entrypoint-num-gpus", type=float, default=None)
    s.add_argument("--entrypoint-memory", type=int, default=None)
    s.add_argument("--entrypoint-resources", default=None, help='custom resources as JSON, e.g. \'{"special": 1}\'')
    s.add_argument("--no-wait", action="store_true", help="return once submitted instead of following the logs")
    s.add_argument("entrypoint", nargs=argparse.REMAINDER, help="-- COMMAND...")
    command("status", cmd_status, "show a job's status")
    lg = command("logs", cmd_logs, "print a job's logs")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    st = command("stop", cmd_stop, "stop a job (SIGTERM, then SIGKILL after a grace period)")
    st.add_argument("--no-wait", action="store_true", help="return without waiting for it to end")
    ls = command("list", cmd_list, "list the cluster's jobs", with_id=False)
    ls.add_argument("--json", action="store_true", help="print the full records as JSON")
    command("delete", cmd_delete, "delete an ended job's record and logs")
