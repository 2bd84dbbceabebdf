"""Runs a job's entrypoint on a node that fits its entrypoint resources (``entrypoint_num_cpus`` & co.).

    python -m spindle._head.jobs.placed SPEC_JSON

The head starts this instead of the entrypoint itself when the job asked for resources. It is a small
Spindle driver: it creates an actor holding exactly those resources (so the scheduler picks the node, and
the resources stay reserved while the entrypoint runs, as Ray's job supervisor actor does), the actor runs
the entrypoint there (its working_dir / py_modules shipped as the uploaded archives) and this process
relays the output to its stdout, which is the job's log. ``placed.json`` in the job directory tells the
head where and when the entrypoint started (the job is PENDING until then). SIGTERM (a stop) is passed on
to the entrypoint's process group; if this process dies, the actor dies with its owner and the
entrypoint's launcher kills its group.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from typing import Any

import spindle

POLL_S = 0.1


class EntrypointRunner:
    """The actor: the entrypoint as a process group on this node, its output in a file read in chunks."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="spindle-job-")
        self.log = os.path.join(self.dir, "driver.log")

    def start(self, launcher: str, entrypoint: str, env: dict[str, str], archives: list[tuple[str, bytes]],
              cwd_archive: str | None) -> dict[str, Any]:
        paths = {}
        for name, data in archives:
            dest = os.path.join(self.dir, name)
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                zf.extractall(dest)
            paths[name] = dest
        python_path = [paths[n] for n, _ in archives]
        full = {**os.environ, **env}
        full["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), full.get("PATH", os.defpath)])
        if python_path:
            full["PYTHONPATH"] = os.pathsep.join(python_path + [p for p in [env.get("PYTHONPATH")] if p])
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", launcher, entrypoint, str(os.getpid())],
                                         env=full, cwd=paths[cwd_archive] if cwd_archive else self.dir, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        ctx = spindle.get_runtime_context()
        node_id = ctx.get_node_id()
        ip = next((n.get("NodeManagerAddress", "") for n in spindle.nodes() if n.get("NodeID") == node_id), "")
        return {"node_id": node_id, "node_ip_address": ip, "pid": self.proc.pid, "time_ms": int(time.time() * 1000)}

    def read(self, pos: int) -> tuple[bytes, int | None]:
        """Output from byte ``pos`` on, and the exit code once the entrypoint has ended and all is read."""
        assert self.proc is not None
        code = self.proc.poll()
        with open(self.log, "rb") as f:
            f.seek(pos)
            chunk = f.read(1 << 20)
        return chunk, (code if code is not None and not chunk else None)

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _archives(spec: dict[str, Any]) -> tuple[list[tuple[str, bytes]], str | None]:
    out = []
    for path in [*([spec["working_dir"]] if spec.get("working_dir") else []), *spec.get("py_modules", [])]:
        with open(path, "rb") as f:
            out.append((os.path.basename(path), f.read()))
    return out, (os.path.basename(spec["working_dir"]) if spec.get("working_dir") else None)


def main() -> int:
    spec = json.loads(sys.argv[1])
    res = dict(spec["resources"])
    opts: dict[str, Any] = {"num_cpus": res.pop("CPU", 0), "max_restarts": 0}
    if "GPU" in res:
        opts["num_gpus"] = res.pop("GPU")
    if "memory" in res:
        opts["memory"] = res.pop("memory")
    if res:
        opts["resources"] = res
    spindle.init(log_to_driver=False)
    from spindle._head.jobs.placed import EntrypointRunner as Runner  # by reference: not this __main__'s copy

    runner = spindle.remote(Runner).options(**opts).remote()  # type: ignore[attr-defined]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    archives, cwd = _archives(spec)
    started = runner.start.remote(spec["launcher"], spec["entrypoint"], spec["env"], archives, cwd)
    while True:  # the actor may wait for resources: a stop meanwhile ends the job without starting it
        ready, _ = spindle.wait([started], timeout=POLL_S)
        if ready:
            break
        if stop.is_set():
            return 128 + signal.SIGTERM
    where = spindle.get(started)
    tmp = spec["placed_file"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(where, f)
    os.replace(tmp, spec["placed_file"])
    pos, signalled = 0, False
    out = sys.stdout.buffer
    while True:
        if stop.is_set() and not signalled:
            runner.signal.remote(signal.SIGTERM)
            signalled = True
        chunk, code = spindle.get(runner.read.remote(pos))
        if chunk:
            out.write(chunk)
            out.flush()
            pos += len(chunk)
            continue
        if code is not None:
            return code if code >= 0 else 128 - code
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main())
