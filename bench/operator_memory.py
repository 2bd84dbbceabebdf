"""Memory of the operator process (``spindle-operator``) reconciling real objects, to compare builds.

    python -m bench.operator_memory [--runs 3] [--clusters 2] [--settle 15] [--compare NAME=REPO_ROOT ...]

The kube-apiserver harness (tests/kube_harness: etcd, kube-apiserver, controller manager; no kubelet) runs
once; CRDs, RBAC and the operator's ServiceAccount are applied from manifests/ as shipped. Each run starts
``python -m spindle_operator`` the way the chart does (``--all-namespaces``, liveness and metrics endpoints,
the ServiceAccount's token), creates ``--clusters`` SpindleClusters of a head and 2 workers in a fresh
namespace, waits until their pods exist, scrapes ``/metrics`` once, idles ``--settle`` seconds and reads
the process's memory from /proc: RSS (VmRSS), PSS and USS (private pages; from smaps_rollup). Medians
over ``--runs``. ``--compare base=/path/to/checkout`` measures another source tree the same way (its
``runtime/`` and ``operator/`` go first on PYTHONPATH, with this venv's packages); variants alternate
run by run, so a drifting machine load shows in both.

Python's memory is deterministic enough here that RSS moves by ~0.1 MiB between runs; the kind pod's
working set (bench/k8s) adds the page cache the container's files occupy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"


def log(msg: str) -> None:
    print(f"[operator_memory {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline, delay = time.monotonic() + timeout, 0.05
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def memory_kib(pid: int) -> dict[str, int]:
    def field(path: str, key: str) -> int:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
        return 0

    rollup = f"/proc/{pid}/smaps_rollup"
    return {
        "rss": field(f"/proc/{pid}/status", "VmRSS:"),
        "pss": field(rollup, "Pss:"),
        "uss": field(rollup, "Private_Clean:") + field(rollup, "Private_Dirty:"),
    }


def get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body: bytes = response.read()
            return body
    except OSError:
        return None


@contextlib.contextmanager
def operator(kubeconfig: str, pythonpath: str | None, logfile: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    live, metrics = free_port(), free_port()
    argv = [sys.executable, "-m", "spindle_operator", "--all-namespaces", "--kubeconfig", kubeconfig,
            f"--liveness=http://127.0.0.1:{live}/healthz", "--resync-seconds=5",
            f"--metrics-address=127.0.0.1:{metrics}"]
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    with logfile.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        def alive() -> bool:
            if proc.poll() is not None:
                tail = logfile.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the operator exited ({proc.returncode}):\n{tail}")
            return get(f"http://127.0.0.1:{live}/healthz") is not None

        wait(alive, "the operator's liveness endpoint")
        yield proc, f"http://127.0.0.1:{metrics}/metrics"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def spindle_cluster(name: str) -> dict[str, Any]:
    container = {"name": "spindle", "image": "spindle:bench"}
    return {
        "apiVersion": "spindle.dev/v1alpha1",
        "kind": "SpindleCluster",
        "metadata": {"name": name},
        "spec": {
            "headGroupSpec": {"template": {"spec": {"containers": [container]}}},
            "workerGroupSpecs": [{"groupName": "workers", "replicas": 2, "minReplicas": 0, "maxReplicas": 10,
                                  "template": {"spec": {"containers": [container]}}}],
        },
    }


def one_run(kube: Any, kubeconfig: str, pythonpath: str | None, args: argparse.Namespace,
            logfile: Path) -> dict[str, int]:
    ns = f"opmem-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", ns)
    try:
        wait(lambda: kube.kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
             "the namespace's default ServiceAccount")
        with operator(kubeconfig, pythonpath, logfile) as (proc, metrics_url):
            body = "\n---\n".join(json.dumps(spindle_cluster(f"c{i}")) for i in range(args.clusters))
            kube.kubectl("apply", "-n", ns, "-f", "-", input=body)
            want = 3 * args.clusters

            def pods() -> bool:
                out = kube.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split()
                return len(out) >= want

            wait(pods, f"{want} pods")
            wait(lambda: get(metrics_url), "the metrics endpoint")
            time.sleep(args.settle)
            return memory_kib(proc.pid)
    finally:
        kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.operator_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per variant (default: %(default)s)")
    parser.add_argument("--clusters", type=int, default=2, help="SpindleClusters per run (default: %(default)s)")
    parser.add_argument("--settle", type=float, default=15.0, help="idle seconds before reading (default: %(default)s)")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=REPO_ROOT",
                        help="also measure the checkout at REPO_ROOT (repeatable)")
    args = parser.parse_args(argv)
    variants: list[tuple[str, str | None]] = [("this", None)]
    for item in args.compare:
        name, sep, path = item.partition("=")
        root = Path(path).resolve()
        if not sep or not (root / "runtime/spindle").is_dir() or not (root / "operator/spindle_operator").is_dir():
            parser.error(f"--compare {item!r}: want NAME=REPO_ROOT, a checkout with runtime/ and operator/")
        variants.append((name, os.pathsep.join([str(root / "runtime"), str(root / "operator")])))

    sys.path.insert(0, str(ROOT))
    from tests.kube_harness import running_cluster

    results: dict[str, list[dict[str, int]]] = {name: [] for name, _ in variants}
    with tempfile.TemporaryDirectory(prefix="opmem-") as tmp, running_cluster(Path(tmp) / "kube") as kube:
        log(f"kube-apiserver at {kube.server}; logs in {tmp}")
        kube.kubectl("apply", "-f", str(MANIFESTS / "crds"), "-f", str(MANIFESTS / "rbac"),
                     "-f", str(MANIFESTS / "operator/00-namespace.yaml"),
                     "-f", str(MANIFESTS / "operator/serviceaccount.yaml"))
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/spindleclusters.spindle.dev")
        kubeconfig = kube.service_account_kubeconfig("spindle-system", "spindle-operator")
        for run in range(args.runs):
            order = variants if run % 2 == 0 else variants[::-1]
            for name, pythonpath in order:
                mem = one_run(kube, kubeconfig, pythonpath, args, Path(tmp) / f"operator-{name}.log")
                results[name].append(mem)
                log(f"run {run + 1}/{args.runs} {name}: " + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in mem.items())
                    + f" (load {os.getloadavg()[0]:.1f})")
    print("| variant | RSS (MiB) | PSS (MiB) | USS (MiB) |\n|---|---:|---:|---:|")
    for name, runs in results.items():
        cells = [f"{statistics.median(r[k] for r in runs) / 1024:.1f}" for k in ("rss", "pss", "uss")]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
