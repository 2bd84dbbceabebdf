"""Run inside a Spindle pod (``kubectl exec -i POD -- python - < pod_stacks.py``) when an e2e test times out.

Sends SIGUSR1 to every Spindle process of the container (head, agent, worker, zygote) and to the e2e
drivers (``/opt/spindle/examples/...``): each writes all its threads' Python stacks to its stderr (see
``spindle._stacks``). Then prints the tail of every Spindle log file of the container (head.log,
agent.log, worker-*.err/.out, job driver logs), where those stacks land, so a hung test's failure
message says where each process was waiting. Stdlib only: it runs with the image's Python.
"""

import glob
import os
import signal
import tempfile
import time

TAIL = 120
me = {os.getpid(), os.getppid()}
signalled = []
for entry in os.listdir("/proc"):
    if not entry.isdigit() or int(entry) in me:
        continue
    try:
        with open(f"/proc/{entry}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        continue
    spindle_role = len(argv) > 2 and argv[1] == "-m" and argv[2].startswith("spindle._")
    e2e_driver = any(a.startswith("/opt/spindle/examples/") for a in argv[1:2])
    if spindle_role or e2e_driver:
        try:
            os.kill(int(entry), signal.SIGUSR1)
            signalled.append(f"{entry} {' '.join(argv)[:160]}")
        except OSError as e:
            signalled.append(f"{entry} (not signalled: {e})")
print("signalled (SIGUSR1, stacks to stderr):\n  " + "\n  ".join(signalled or ["nothing"]))
time.sleep(2)
roots = {os.environ.get("SPINDLE_TEMP_DIR") or "", tempfile.gettempdir()}
files = sorted({p for r in roots if r for pat in ("**/*.log", "**/*.err", "**/*.out")
                for p in glob.glob(os.path.join(r, pat), recursive=True)})
for path in files:
    try:
        if os.path.getsize(path) == 0:
            continue
        with open(path, errors="replace") as f:
            lines = f.readlines()
    except OSError:
        continue
    print(f"----- {path} (last {min(TAIL, len(lines))} of {len(lines)} lines)")
    print("".join(lines[-TAIL:]), end="")
