"""An idle embedded cluster keeps only the driver, its head+agent process and the warm workers (issue 14).

Two ways it used to keep more: a lease returned to the agent freed its CPUs before its worker was back in
the pool, so a lease granted in that gap found no idle worker and started one (the node's zygote plus a
forked worker; the zygote outlived the burst); and workers released together each saw the pool above its
warm count and all stopped. Bursts of two functions' tasks make leases change hands many times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

PY = sys.executable

DRIVER = """
import json, time, psutil, spindle

spindle.init(num_cpus=2)

@spindle.remote
def whole():
    return 1

@spindle.remote
def other():
    return 2

for _ in range(30):  # leases of both functions are returned and granted again and again, never more than 2 at once
    assert sum(spindle.get([whole.remote() for _ in range(4)] + [other.remote() for _ in range(4)])) == 12

def tree():
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            out.append(" ".join(p.cmdline()))
        except psutil.NoSuchProcess:
            pass
    return out

def kinds(cmds):
    return sorted(c.split(" -m ")[1].split()[0] if " -m " in c else c for c in cmds)

want = ["spindle._core.worker", "spindle._core.worker", "spindle._embedded"]
deadline, delay = time.monotonic() + 60, 0.05  # an extra worker stops gracefully: wait for it, not for a zygote
while kinds(tree()) != want and time.monotonic() < deadline:
    time.sleep(delay)
    delay = min(delay * 2, 1.0)
print(json.dumps(kinds(tree())))
spindle.shutdown()
"""


def test_an_idle_embedded_cluster_after_bursts_has_only_its_process_and_the_warm_workers() -> None:
    out = subprocess.run([PY, "-c", textwrap.dedent(DRIVER)], capture_output=True, text=True, timeout=400,
                         env={**os.environ, "SPINDLE_ADDRESS": "", "RAY_ADDRESS": ""})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        "spindle._core.worker", "spindle._core.worker", "spindle._embedded"]
