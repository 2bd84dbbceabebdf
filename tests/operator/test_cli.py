"""`spindle-operator` flags map onto the settings object."""

from __future__ import annotations

import subprocess
import sys

from spindle_operator._cli import parse_args, settings_from_args


def test_namespaces_make_the_operator_namespaced():
    s = settings_from_args(parse_args(["--namespace", "a", "-n", "b", "--liveness", "http://0.0.0.0:8081/healthz"]))
    assert s.watch.namespaces == ("a", "b") and not s.watch.clusterwide
    assert s.watch.liveness_endpoint == "http://0.0.0.0:8081/healthz"


def test_all_namespaces_is_the_default():
    assert settings_from_args(parse_args([])).watch.clusterwide
    assert settings_from_args(parse_args(["--all-namespaces"])).watch.clusterwide


def test_namespace_and_all_namespaces_exclude_each_other():
    proc = subprocess.run([sys.executable, "-m", "spindle_operator", "-A", "-n", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


def test_kopf_run_finds_the_handlers_in_the_default_registry():
    import kopf

    import spindle_operator  # noqa: F401  (registers on import, for `kopf run -m spindle_operator`)

    ids = {h.id for h in kopf.get_default_registry()._watching.get_all_handlers()}
    assert {"cluster_changed", "pod_changed"} <= {i.rsplit(".", 1)[-1] for i in ids}


def test_kopf_is_configured_for_least_privilege_and_server_side_pod_filtering():
    import kopf

    from spindle_operator._handlers import configure_kopf

    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    assert settings.scanning.disabled  # no CRD/namespace list permissions needed
    assert settings.peering.standalone  # no peering objects
    assert settings.watching.label_selectors["v1", "pods"] == "spindle.dev/cluster"


def test_kopf_logs_in_with_the_same_credentials_as_the_operator_client():
    import kubernetes

    from spindle_operator._kube import kopf_connection

    token = kubernetes.client.Configuration()
    token.host, token.ssl_ca_cert = "https://10.0.0.1:443", "/ca.crt"
    token.api_key = {"authorization": "Bearer abc"}
    info = kopf_connection(token)
    assert (info.server, info.ca_path, info.scheme, info.token, info.insecure) == (
        "https://10.0.0.1:443",
        "/ca.crt",
        "Bearer",
        "abc",
        False,
    )

    cert = kubernetes.client.Configuration()
    cert.host, cert.cert_file, cert.key_file = "https://127.0.0.1:6443", "/admin.crt", "/admin.key"
    info = kopf_connection(cert)
    assert (info.token, info.certificate_path, info.private_key_path) == (None, "/admin.crt", "/admin.key")
