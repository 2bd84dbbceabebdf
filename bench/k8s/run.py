"""``python -m bench --k8s``: Spindle's operator and KubeRay's, side by side on one kind cluster.

Per repetition, for each side (the order alternates): `kubectl apply` of a cluster with a head and 2
workers until it is Ready; the working-set memory of its head and worker pods once settled; a job on
that cluster (clusterSelector) from apply to SUCCEEDED; then a job that brings its own cluster
(clusterSpec, deleted when it finishes) from apply to SUCCEEDED. After the repetitions: both operators'
memory and the image sizes. Medians go in a table; every sample in bench/results/k8s-<time>.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.k8s import manifests

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_NAME = "spindle-bench"
NS = "bench"
KUBERAY_NS = "kuberay-system"
KUBERAY_IMAGE = "kuberay-operator:v1.5.0"
RAY_IMAGE = "ray:2.60.0"
TIMEOUT = 600.0


def log(msg: str) -> None:
    print(f"[bench-k8s {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Kube:
    env: dict[str, str]
    kubeconfig: Path

    def run(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 300) -> str:
        proc = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], input=stdin, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", *args, "-o", "json"))

    def apply(self, objs: list[dict[str, Any]] | dict[str, Any], *extra: str) -> None:
        docs = objs if isinstance(objs, list) else [objs]
        self.run("apply", *extra, "-f", "-", stdin=yaml.safe_dump_all(docs), timeout=600)

    def pods(self, selector: str, namespace: str = NS) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("pods", "-n", namespace, "-l", selector)["items"]
        return items


def wait(probe: Callable[[], Any], what: str, timeout: float = TIMEOUT, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def ready(pod: dict[str, Any]) -> bool:
    st = pod.get("status", {})
    cs = st.get("containerStatuses") or []
    return st.get("phase") == "Running" and bool(cs) and all(c.get("ready") for c in cs)


@dataclass(frozen=True)
class Side:
    """What differs between Spindle and KubeRay: resource kinds, labels and status fields."""

    name: str
    image: str
    cluster_kind: str
    job_kind: str
    cluster_label: str
    node_type_label: str
    make_cluster: Callable[[str, str], dict[str, Any]]
    make_job: Callable[[str, str, str | None], dict[str, Any]]
    operator: tuple[str, str]  # namespace, pod selector

    def cluster_ready(self, kube: Kube, name: str) -> bool:
        status = kube.get(self.cluster_kind, name, "-n", NS).get("status") or {}
        if self.name == "spindle":
            state_ok = status.get("state") == "Ready"
        else:
            state_ok = status.get("state") == "ready" and int(status.get("readyWorkerReplicas") or 0) >= 2
        pods = kube.pods(f"{self.cluster_label}={name}")
        return state_ok and len(pods) == 3 and all(ready(p) for p in pods)

    def job_status(self, kube: Kube, name: str) -> str:
        status = kube.get(self.job_kind, name, "-n", NS).get("status") or {}
        if status.get("jobDeploymentStatus") == "Failed":
            raise RuntimeError(f"{self.job_kind} {name} failed: {status.get('message') or status.get('reason')}")
        return str(status.get("jobStatus") or "")


SPINDLE = Side("spindle", "spindle:0.1.0", "spindlecluster", "spindlejob", "spindle.dev/cluster", "spindle.dev/node-type",
               lambda n, i: manifests.spindle_cluster(n, i), manifests.spindle_job,
               ("spindle-system", "app.kubernetes.io/name=spindle-operator"))
KUBERAY = Side("kuberay", RAY_IMAGE, "raycluster", "rayjob", "ray.io/cluster", "ray.io/node-type",
               lambda n, i: manifests.ray_cluster(n, i), manifests.ray_job,
               (KUBERAY_NS, "app.kubernetes.io/name=kuberay"))


def working_set_mib(kube: Kube, namespace: str, pod: str, container: str | None = None) -> float:
    """The container's cgroup memory minus inactive page cache (what kubelet calls the working set)."""
    script = ("if [ -f /sys/fs/cgroup/memory.current ]; then cat /sys/fs/cgroup/memory.current; "
              "grep -w inactive_file /sys/fs/cgroup/memory.stat; else cat /sys/fs/cgroup/memory/memory.usage_in_bytes; "
              "grep -w total_inactive_file /sys/fs/cgroup/memory/memory.stat; fi")
    args = ["exec", "-n", namespace, pod, *(["-c", container] if container else []), "--", "sh", "-c", script]
    lines = kube.run(*args).split("\n")
    usage = int(lines[0])
    inactive = int(lines[1].split()[1]) if len(lines) > 1 and lines[1].strip() else 0
    return (usage - inactive) / 2**20


def delete_and_wait(kube: Kube, kind: str, name: str, selector: str) -> None:
    kube.run("delete", kind, name, "-n", NS, "--ignore-not-found", "--wait=false")
    wait(lambda: not kube.pods(selector), f"the pods of {kind} {name} to go", every=1.0)


@dataclass
class Samples:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, metric: str, side: str, value: float) -> None:
        self.values.setdefault(metric, {}).setdefault(side, []).append(value)
        log(f"    {metric} {side}: {value:.1f}")


def one_side(kube: Kube, side: Side, rep: int, samples: Samples) -> None:
    name = f"{side.name}-{rep}"
    began = time.monotonic()
    kube.apply(side.make_cluster(name, side.image), "-n", NS)
    wait(lambda: side.cluster_ready(kube, name), f"{side.cluster_kind} {name} Ready")
    samples.add("apply to Ready cluster, 2 workers (s)", side.name, time.monotonic() - began)
    time.sleep(15)  # settled: start-up work done
    for pod in kube.pods(f"{side.cluster_label}={name}"):
        role = pod["metadata"]["labels"].get(side.node_type_label, "")
        samples.add(f"{role} pod memory, idle (MiB)", side.name, working_set_mib(kube, NS, pod["metadata"]["name"]))
    job = f"{name}-on-cluster"
    began = time.monotonic()
    kube.apply(side.make_job(job, side.image, name), "-n", NS)
    wait(lambda: side.job_status(kube, job) == "SUCCEEDED", f"{side.job_kind} {job} SUCCEEDED")
    samples.add("job on a running cluster, apply to SUCCEEDED (s)", side.name, time.monotonic() - began)
    kube.run("delete", side.job_kind, job, "-n", NS, "--wait=true", timeout=300)
    delete_and_wait(kube, side.cluster_kind, name, f"{side.cluster_label}={name}")
    job = f"{name}-new-cluster"
    began = time.monotonic()
    kube.apply(side.make_job(job, side.image, None), "-n", NS)
    wait(lambda: side.job_status(kube, job) == "SUCCEEDED", f"{side.job_kind} {job} SUCCEEDED")
    samples.add("job with its own cluster, apply to SUCCEEDED (s)", side.name, time.monotonic() - began)
    kube.run("delete", side.job_kind, job, "-n", NS, "--wait=true", timeout=300)
    wait(lambda: not kube.pods(f"{side.cluster_label}"), f"the pods of {side.job_kind} {job} to go", every=1.0)


def tool_env() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "scripts/kind-up.sh"), "--print-env"], capture_output=True, text=True,
                         check=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            value = value.strip("'\"").replace("$PATH", env.get("PATH", ""))
            env[key] = value
    return env


def install_kuberay(kube: Kube, moddir: Path) -> None:
    crds = [yaml.safe_load((moddir / "config/crd/bases" / f).read_text())
            for f in ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml", "ray.io_rayservices.yaml")]
    # all three CRDs: KubeRay's operator watches RayServices too and exits when their CRD is missing
    rbac = list(yaml.safe_load_all((moddir / "config/rbac/role.yaml").read_text()))
    kube.run("create", "namespace", KUBERAY_NS, check=False)
    # the CRDs are too large for client-side apply's last-applied annotation
    kube.apply(manifests.kuberay_install(crds, rbac, KUBERAY_IMAGE, KUBERAY_NS), "--server-side",
               "--force-conflicts")
    kube.run("rollout", "restart", "-n", KUBERAY_NS, "deployment/kuberay-operator")  # after a crash loop, if any
    kube.run("rollout", "status", "-n", KUBERAY_NS, "deployment/kuberay-operator", "--timeout=300s", timeout=320)


def image_mib(env: dict[str, str], ref: str) -> float:
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", ref], env=env, capture_output=True,
                         text=True, check=True).stdout
    return int(out.strip()) / 2**20


def table(samples: Samples) -> str:
    lines = ["| metric | Spindle | KubeRay | KubeRay / Spindle |", "|---|---:|---:|---:|"]
    for metric, by_side in samples.values.items():
        s = statistics.median(by_side.get("spindle", [float("nan")]))
        r = statistics.median(by_side.get("kuberay", [float("nan")]))
        lines.append(f"| {metric} | {s:.1f} | {r:.1f} | {r / s:.2f}x |")
    return "\n".join(lines)


def _cluster_exists(env: dict[str, str]) -> bool:
    out = subprocess.run(["kind", "get", "clusters"], env=env, capture_output=True, text=True, check=False).stdout
    return CLUSTER_NAME in out.split()


def main(reps: int = 3, keep: bool = False, out: Path | None = None) -> int:
    env = tool_env()
    log("building KubeRay's operator and the Ray image (cached after the first run)")
    built = subprocess.run([str(ROOT / "bench/k8s/build-images.sh")], env=env, capture_output=True, text=True,
                           check=False)
    if built.returncode != 0:
        log(built.stderr[-3000:])
        return 1
    moddir = Path(built.stdout.strip().splitlines()[-1])
    work = Path(tempfile.mkdtemp(prefix="bench-k8s-"))
    kube = Kube(env, work / "kubeconfig")
    down = [str(ROOT / "scripts/kind-down.sh"), "--name", CLUSTER_NAME, "--kubeconfig", str(kube.kubeconfig)]
    if keep and _cluster_exists(env):  # a cluster kept by an earlier --keep-cluster run: measure on it again
        log(f"reusing the kind cluster {CLUSTER_NAME} (--keep-cluster)")
        subprocess.run(["kind", "export", "kubeconfig", "--name", CLUSTER_NAME, "--kubeconfig", str(kube.kubeconfig)],
                       env=env, capture_output=True, check=True)
        kube.run("delete", "namespace", NS, "--ignore-not-found", "--wait=true", timeout=600)
    else:
        subprocess.run(down, env=env, capture_output=True, check=False)
        log(f"kind cluster {CLUSTER_NAME} with Spindle's operator (scripts/kind-up.sh; a few minutes)")
        up = subprocess.run([str(ROOT / "scripts/kind-up.sh"), "--name", CLUSTER_NAME, "--kubeconfig",
                             str(kube.kubeconfig)], env=env, capture_output=True, text=True, check=False)
        if up.returncode != 0:
            log(up.stderr[-3000:])
            return 1
    samples = Samples()
    try:
        subprocess.run(["kind", "load", "docker-image", "--name", CLUSTER_NAME, KUBERAY_IMAGE, RAY_IMAGE], env=env,
                       capture_output=True, check=True, timeout=900)
        install_kuberay(kube, moddir)
        kube.run("create", "namespace", NS, check=False)
        for rep in range(reps):
            for side in (SPINDLE, KUBERAY) if rep % 2 == 0 else (KUBERAY, SPINDLE):
                log(f"rep {rep + 1}/{reps}: {side.name}")
                one_side(kube, side, rep, samples)
        for side in (SPINDLE, KUBERAY):
            namespace, selector = side.operator
            [pod] = kube.pods(selector, namespace)
            restarts = sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses") or [])
            if restarts:
                log(f"    warning: the {side.name} operator restarted {restarts} time(s) during the run")
            samples.add("operator pod memory (MiB)", side.name, working_set_mib(kube, namespace, pod["metadata"]["name"]))
        samples.add("runtime image size (MiB)", "spindle", image_mib(env, SPINDLE.image))
        samples.add("runtime image size (MiB)", "kuberay", image_mib(env, RAY_IMAGE))
        samples.add("operator image size (MiB)", "spindle", image_mib(env, "spindle-operator:0.1.0"))
        samples.add("operator image size (MiB)", "kuberay", image_mib(env, KUBERAY_IMAGE))
    finally:
        if not keep:
            subprocess.run(down, env=env, capture_output=True, check=False)
    now = dt.datetime.now(dt.timezone.utc)
    out = out or ROOT / "bench/results" / f"k8s-{now:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"date": now.isoformat(timespec="seconds"), "reps": reps,
                               "samples": samples.values}, indent=1))
    print(table(samples))
    print(f"\nJSON: {out}")
    return 0
