"""A real kind cluster for the end-to-end tests, driven through the same scripts and CLIs a user runs.

The cluster comes from scripts/kind-up.sh (Spindle's private dockerd, the locally built node image,
Spindle's images loaded, the operator installed by helm from charts/) under its own name and kubeconfig,
so a developer's own `spindle` cluster and ~/.kube/config are never touched; scripts/kind-down.sh removes
it. Everything here shells out to kubectl, helm and kind: what the tests check is what users see.
Waits poll with backoff up to generous deadlines and fail with what they were waiting for and what they
saw last, so a slow machine makes a test slower, not flaky.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def script_output(*args: str) -> str:
    return subprocess.run([str(ROOT / "scripts" / args[0]), *args[1:]], capture_output=True, text=True,
                          check=True).stdout.strip()


def tool_env() -> dict[str, str]:
    """The environment kind-up.sh uses: its dockerd, and kind, kubectl and helm from the build caches."""
    env = dict(os.environ)
    env["DOCKER_HOST"] = script_output("dockerd.sh", "env").split("=", 1)[1]
    bins = [script_output("build-kind-bins.sh", "--print-bin-dir"), script_output("build-k8s.sh", "--print-bin-dir")]
    env["PATH"] = os.pathsep.join([*bins, env.get("PATH", "")])
    return env


class WaitTimeout(AssertionError):
    pass


def wait_for(probe: Callable[[], T | None], what: str, timeout: float, describe: Callable[[], str] | None = None) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` and the last state seen."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except subprocess.CalledProcessError as exc:  # a transient API hiccup: keep waiting
            last_error = exc
        if time.monotonic() >= deadline:
            seen = describe() if describe else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}"
                              + (f"; last error: {last_error}" if last_error else "") + (f"\n{seen}" if seen else ""))
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


@dataclass
class Kind:
    """One kind cluster and the tools to talk to it."""

    name: str
    kubeconfig: Path
    env: dict[str, str] = field(default_factory=tool_env)

    def run(self, args: Sequence[str], *, check: bool = True, timeout: float = 180,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "KUBECONFIG": str(self.kubeconfig)}
        proc = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout, input=stdin,
                              check=False, cwd=ROOT)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, list(args), proc.stdout, proc.stderr)
        return proc

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(["kubectl", *args], **kw)

    def helm(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(["helm", *args], **kw)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("pods", "-n", namespace, "-l", selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def apply(self, namespace: str, manifest: str) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest)

    def diagnostics(self, namespace: str) -> str:
        """Pods, events and logs of every container in ``namespace`` and of the operator."""
        parts = []
        for title, args in [
            ("pods (all namespaces)", ["get", "pods", "-A", "-o", "wide"]),
            (f"spindleclusters in {namespace}", ["get", "spc", "-n", namespace, "-o", "yaml"]),
            (f"events in {namespace}", ["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"]),
            (f"pods in {namespace}", ["describe", "pods", "-n", namespace]),
        ]:
            parts.append(f"===== {title}\n{self._text(args)}")
        for ns in (namespace, "spindle-system"):
            try:
                names = [p["metadata"]["name"] for p in self.get("pods", "-n", ns)["items"]]
            except subprocess.CalledProcessError as exc:
                parts.append(f"===== cannot list pods in {ns}: {exc.stderr}")
                continue
            for pod in names:
                logs = self._text(["logs", "-n", ns, pod, "--all-containers", "--prefix", "--tail=200"])
                prev = self._text(["logs", "-n", ns, pod, "--all-containers", "--prefix", "--tail=50", "--previous"])
                parts.append(f"===== logs {ns}/{pod}\n{logs}")
                if "previous terminated container" not in prev and prev.strip():
                    parts.append(f"===== logs of the previous container {ns}/{pod}\n{prev}")
        return "\n".join(parts)

    def stacks(self, namespace: str, selector: str) -> str:
        """Every thread's stack of the Spindle processes and e2e drivers in the running pods matching ``selector``,
        with the tails of their log files (tests/e2e/pod_stacks.py): what a timed-out test reports."""
        script = (ROOT / "tests/e2e/pod_stacks.py").read_text()
        parts = []
        try:
            pods = [p["metadata"]["name"] for p in self.pods(namespace, selector) if p["status"].get("phase") == "Running"]
        except subprocess.CalledProcessError as exc:
            return f"===== cannot list pods {selector}: {exc.stderr}"
        for pod in pods:
            try:
                proc = self.kubectl("exec", "-i", "-n", namespace, pod, "--", "python", "-", stdin=script, check=False,
                                    timeout=120)
                out = proc.stdout + proc.stderr
            except subprocess.TimeoutExpired:
                out = "(kubectl exec timed out)"
            logs = self._text(["logs", "-n", namespace, pod, "--all-containers", "--tail=300"])
            parts.append(f"===== stacks and logs in {namespace}/{pod}\n{out}\n===== container log of {pod}\n{logs}")
        return "\n".join(parts) or f"===== no running pod matches {selector}"

    def _text(self, args: list[str]) -> str:
        try:
            proc = self.kubectl(*args, check=False, timeout=60)
        except subprocess.TimeoutExpired:
            return f"(kubectl {' '.join(args)} timed out)"
        return proc.stdout + proc.stderr
