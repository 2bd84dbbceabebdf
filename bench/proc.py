"""Running one measured interpreter: timeout, peak memory of its process tree, and clean-up.

The orchestrator samples the tree's memory from outside (so the driver is not slowed by sampling): its
PSS sum, which counts pages shared between processes (forked workers and their zygote) once
(``bench/treemem.py``), and for comparison its summed RSS. It kills the whole tree when a run exceeds
its time or memory budget (the machine is shared, and 1,000 actor processes can exhaust it), and reaps
anything a run left behind so the next run starts clean.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench import treemem

MARKER = "BENCH_RESULT "
PROGRESS = "BENCH_PROGRESS "
MIB = 1024 * 1024


@dataclass
class Outcome:
    ok: bool
    wall_s: float
    peak_mib: float  # PSS sum of the tree (shared pages once)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stderr_tail: str = ""
    peak_rss_mib: float = 0.0  # summed RSS (shared pages once per process), for comparison


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(procs: list[psutil.Process]) -> dict[int, int]:
    out = {}
    for p in procs:
        rss = treemem.read_rss(p.pid)
        if rss is not None:
            out[p.pid] = rss
    return out


def _kill(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


def _parse(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            parsed: dict[str, Any] = json.loads(line[len(MARKER) :])
            return parsed
    return None


def run(
    cmd: list[str],
    env: dict[str, str],
    cwd: str,
    timeout_s: float,
    mem_cap_mib: float,
    sample_s: float = 0.1,
) -> Outcome:
    """Run ``cmd`` to completion (or its budget) and return what it reported plus wall time and peak memory."""
    start = time.perf_counter()
    popen = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    root = psutil.Process(popen.pid)
    seen: dict[int, psutil.Process] = {}
    mem = treemem.TreeMemory()
    failure: str | None = None
    # Read output on a thread-free path: communicate() with short timeouts lets us sample in between.
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    while True:
        try:
            out, err = popen.communicate(timeout=sample_s)
            out_chunks.append(out)
            err_chunks.append(err)
            break
        except subprocess.TimeoutExpired:
            pass
        procs = _tree(root)
        seen.update({p.pid: p for p in procs})
        rss = _rss(procs)
        mem.sample(rss)
        elapsed = time.perf_counter() - start
        if elapsed > timeout_s:
            failure = f"timeout after {timeout_s:.0f} s"
        elif mem.over(rss, int(mem_cap_mib * MIB)):
            failure = f"memory cap {mem_cap_mib:.0f} MiB (PSS of the process tree) exceeded"
        if failure:
            _kill(procs)
            out, err = popen.communicate()
            out_chunks.append(out)
            err_chunks.append(err)
            break
    wall = time.perf_counter() - start
    peak, peak_rss = mem.peak / MIB, mem.peak_rss / MIB
    # Anything the run started and left running (a daemonized cluster, orphaned workers) goes now.
    _kill([p for p in seen.values() if p.is_running() and p.pid != popen.pid])
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except OSError:
        pass
    stdout, stderr = "".join(out_chunks), "".join(err_chunks)
    reported = _parse(stdout)
    tail = stderr[-2000:]
    if failure:
        progress = [line[len(PROGRESS) :] for line in stdout.splitlines() if line.startswith(PROGRESS)]
        if progress:
            failure += f"; last progress: {progress[-1]}"
        return Outcome(False, wall, peak, error=failure, stderr_tail=tail, peak_rss_mib=peak_rss)
    if reported is None:
        return Outcome(
            False,
            wall,
            peak,
            error=f"exit {popen.returncode}, no result",
            stderr_tail=tail,
            peak_rss_mib=peak_rss,
        )
    return Outcome(
        bool(reported.get("ok")),
        wall,
        peak,
        reported.get("metrics", {}),
        reported.get("error"),
        tail,
        peak_rss,
    )
