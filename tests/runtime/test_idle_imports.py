"""Every Spindle process of an idle cluster leaves out the modules only some requests need (idle memory).

Each process imports gRPC, protobuf and cloudpickle (~40 MiB of RSS apiece), so what is left to save is what
a process imports beyond them: ``zipfile`` for the driver's working_dir packing, ``urllib.request`` for the
autoscaler's HTTP client, ``prometheus_client`` for the metrics port. Each costs ~1 MiB of private memory per
process and loads on first use instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("zipfile", "urllib.request", "prometheus_client")


def _loaded(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + textwrap.dedent(f"""
        import sys, json
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_a_driver_that_ran_tasks_has_not_loaded_the_packing_or_metrics_modules() -> None:
    assert _loaded("""
        import spindle
        spindle.init(num_cpus=1, include_dashboard=False)
        assert spindle.get(spindle.remote(lambda: 1).remote()) == 1
        spindle.shutdown()
    """) == []


def test_the_head_and_agent_modules_leave_the_autoscaler_client_and_prometheus_for_first_use() -> None:
    assert _loaded("""
        import spindle._embedded, spindle._head.server, spindle._agent.agent, spindle.autoscaler.local
    """) == ["zipfile"]  # the head's package store unpacks uploaded working dirs
    # with the dashboard's aiohttp loaded (which imports urllib.request itself), the metrics port still
    # loads prometheus_client only when scraped
    assert _loaded("import spindle._head.state.metrics, spindle._head.http_server") == ["zipfile", "urllib.request"]


def test_packing_a_directory_still_works_after_the_lazy_import(tmp_path: object) -> None:
    from pathlib import Path

    from spindle.job_submission.packaging import pack_directory

    root = Path(str(tmp_path)) / "pkg"
    root.mkdir()
    (root / "m.py").write_text("X = 1\n")
    uri, data = pack_directory(str(root))
    assert uri.startswith("gcs://") and data[:2] == b"PK"
