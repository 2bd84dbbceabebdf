"""The runtime's public client APIs that the operator uses load no wire layer (operator memory and image).

The operator (``spindle_operator``) imports ``spindle.autoscaler.policy`` (a pure function) and
``spindle.job_submission`` (an HTTP client) and nothing else of the runtime. gRPC and protobuf (~16 MiB of
RSS, ~135 ms of import) and numpy belong to drivers, workers and the head; loading them in the operator
would cost every operator pod that memory for nothing, and keep the operator image from leaving them out
(tests/operator/test_footprint.py checks the whole operator).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

WIRE = ("grpc", "google.protobuf", "numpy", "cloudpickle", "spindle._proto")


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + textwrap.dedent(f"""
        import sys, json
        print(json.dumps([m for m in {WIRE!r} if m in sys.modules]))
    """)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_autoscaling_policy_loads_neither_grpc_nor_protobuf_nor_numpy() -> None:
    assert _loaded_after("import spindle.autoscaler.policy") == []
    assert _loaded_after("from spindle.autoscaler import policy, sdk") == []


def test_the_job_submission_client_loads_neither_grpc_nor_protobuf_nor_numpy() -> None:
    assert _loaded_after("""
        import spindle.job_submission
        from spindle.job_submission import JobStatus, JobSubmissionClient
        assert JobSubmissionClient.__name__ == "JobSubmissionClient" and JobStatus.SUCCEEDED.is_terminal()
    """) == []


def test_request_resources_loads_the_wire_layer_on_its_first_call() -> None:
    # a wrong argument fails before the import, a call without a cluster after it (with the usual error);
    # tests/runtime/test_autoscaler_state.py covers the call against a running head
    assert _loaded_after("""
        from spindle.autoscaler.sdk import request_resources
        try:
            request_resources(num_cpus=-1)
        except TypeError:
            pass
        else:
            raise AssertionError("num_cpus=-1 was accepted")
        import sys
        assert "grpc" not in sys.modules
        try:
            request_resources(num_cpus=1)
        except RuntimeError as exc:
            assert "spindle.init()" in str(exc), exc
        else:
            raise AssertionError("request_resources without a cluster did not fail")
    """) == ["grpc", "google.protobuf", "spindle._proto"]
