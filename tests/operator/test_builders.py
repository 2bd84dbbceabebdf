"""Manifest builders return the exact dicts the operator POSTs."""

from __future__ import annotations

import dataclasses

from spindle_operator import OperatorSettings
from spindle_operator._builders import (
    HEAD,
    WORKER,
    build_head_service,
    build_pod,
    build_token_secret,
    cpu_quantity,
    inferred_params,
    start_flags,
    template_hash,
)
from spindle_operator._settings import NodeSettings

from .factories import SETTINGS, cluster, group

OWNER = {
    "apiVersion": "spindle.dev/v1alpha1",
    "kind": "SpindleCluster",
    "name": "c",
    "uid": "0000-cluster-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}
AGENT_ENV = [
    {"name": "SPINDLE_ADDRESS", "value": "c-head-svc.ns.svc:6380"},
    {"name": "SPINDLE_TOKEN", "valueFrom": {"secretKeyRef": {"name": "c-spindle-token", "key": "token"}}},
    {"name": "SPINDLE_NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    {"name": "SPINDLE_CLUSTER_NAME", "value": "c"},
    {"name": "SPINDLE_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
]


def agent_env(group: str) -> list[dict[str, object]]:
    labels = '{"spindle.dev/pod-name":"$(SPINDLE_POD_NAME)","spindle.dev/group":"' + group + '"}'
    return [*AGENT_ENV, {"name": "SPINDLE_NODE_LABELS", "value": labels}]


def test_a_worker_pod_is_named_labelled_owned_and_starts_an_agent_after_the_head_answers():
    g = group("cpu", startParams={"num-cpus": "2"})
    pod = build_pod(cluster(g), WORKER, g, SETTINGS)
    assert pod["metadata"] == {
        "generateName": "c-cpu-worker-",
        "namespace": "ns",
        "labels": {
            "spindle.dev/cluster": "c",
            "app.kubernetes.io/managed-by": "spindle-operator",
            "spindle.dev/node-type": "worker",
            "spindle.dev/group": "cpu",
            "spindle.dev/template-hash": template_hash(g),
        },
        "ownerReferences": [OWNER],
    }
    main = pod["spec"]["containers"][0]
    assert main["command"] == [
        "spindle",
        "start",
        "--address",
        "$(SPINDLE_ADDRESS)",
        "--block",
        "--num-cpus",
        "2",
    ]
    assert main["env"] == agent_env("cpu")
    [wait] = pod["spec"]["initContainers"]
    assert wait["name"] == "wait-for-head"
    assert wait["image"] == "spindle:test"
    assert wait["command"][:2] == ["python", "-c"]
    assert wait["env"] == AGENT_ENV[:1]


def test_the_head_pod_runs_the_head_and_declares_its_ports_and_readiness():
    c = cluster()
    pod = build_pod(c, HEAD, c["spec"]["headGroupSpec"], SETTINGS)
    assert pod["metadata"]["generateName"] == "c-head-"
    assert pod["metadata"]["labels"]["spindle.dev/node-type"] == "head"
    main = pod["spec"]["containers"][0]
    assert main["command"] == ["spindle", "start", "--head", "--host", "0.0.0.0", "--port", "6380", "--block"]
    assert [(p["name"], p["containerPort"]) for p in main["ports"]] == [
        ("gcs", 6380),
        ("dashboard", 8265),
        ("client", 10001),
        ("metrics", 8080),
    ]
    assert main["readinessProbe"]["tcpSocket"] == {"port": 6380}
    assert "initContainers" not in pod["spec"]


def test_the_template_wins_over_operator_defaults():
    g = group()
    main = g["template"]["spec"]["containers"][0]
    main["args"] = ["my-entrypoint"]
    main["env"] = [{"name": "SPINDLE_ADDRESS", "value": "elsewhere:1"}]
    g["template"]["spec"]["initContainers"] = [{"name": "wait-for-head", "image": "busybox"}]
    g["template"]["metadata"] = {"labels": {"team": "ml"}, "annotations": {"a": "b"}}
    pod = build_pod(cluster(g), WORKER, g, SETTINGS)
    out = pod["spec"]["containers"][0]
    assert "command" not in out and out["args"] == ["my-entrypoint"]
    assert [e["name"] for e in out["env"]].count("SPINDLE_ADDRESS") == 1
    assert out["env"][-1] == {"name": "SPINDLE_ADDRESS", "value": "elsewhere:1"}
    assert pod["spec"]["initContainers"] == [{"name": "wait-for-head", "image": "busybox"}]
    assert pod["metadata"]["labels"]["team"] == "ml"
    assert pod["metadata"]["annotations"] == {"a": "b"}


def test_building_a_pod_does_not_mutate_the_cluster_spec():
    g = group()
    c = cluster(g)
    before = repr(c)
    build_pod(c, WORKER, g, SETTINGS)
    build_pod(c, HEAD, c["spec"]["headGroupSpec"], SETTINGS)
    assert repr(c) == before


def test_the_template_hash_follows_the_user_spec_not_the_operator_settings():
    g = group()
    other = dataclasses.replace(SETTINGS, node=NodeSettings(agent_command=("other",)))
    c = cluster(g)
    h = build_pod(c, WORKER, g, SETTINGS)["metadata"]["labels"]["spindle.dev/template-hash"]
    assert build_pod(c, WORKER, g, other)["metadata"]["labels"]["spindle.dev/template-hash"] == h
    assert template_hash({**g, "replicas": 9}) == h
    assert template_hash({**g, "startParams": {"num-cpus": "1"}}) != h


def test_start_params_become_sorted_flags():
    assert start_flags({"num-cpus": "2", "block": "", "--resources": '{"gpu": 1}'}) == [
        "--block",
        "--num-cpus",
        "2",
        "--resources",
        '{"gpu": 1}',
    ]


def test_the_head_service_exposes_every_head_port_and_selects_the_head():
    svc = build_head_service(cluster(), SETTINGS)
    assert svc["metadata"]["name"] == "c-head-svc"
    assert svc["metadata"]["ownerReferences"] == [OWNER]
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {"spindle.dev/cluster": "c", "spindle.dev/node-type": "head"},
        "ports": [
            {"name": "gcs", "port": 6380, "targetPort": 6380, "protocol": "TCP"},
            {"name": "dashboard", "port": 8265, "targetPort": 8265, "protocol": "TCP"},
            {"name": "client", "port": 10001, "targetPort": 10001, "protocol": "TCP"},
            {"name": "metrics", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
        ],
    }


def test_the_cluster_domain_setting_qualifies_the_head_address():
    s = dataclasses.replace(SETTINGS, node=NodeSettings(cluster_domain="example.local"))
    g = group()
    env = build_pod(cluster(g), WORKER, g, s)["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "SPINDLE_ADDRESS", "value": "c-head-svc.ns.svc.example.local:6380"}


def test_the_token_secret_is_owned_by_the_cluster():
    secret = build_token_secret(cluster(), "tok")
    assert secret["metadata"]["name"] == "c-spindle-token"
    assert secret["metadata"]["ownerReferences"] == [OWNER]
    assert secret["stringData"] == {"token": "tok"}


def test_settings_come_from_the_environment_for_kopf_run():
    s = OperatorSettings.from_env({"SPINDLE_OPERATOR_NAMESPACES": "a,b", "SPINDLE_OPERATOR_RESYNC_SECONDS": "5"})
    assert s.watch.namespaces == ("a", "b") and not s.watch.clusterwide
    assert s.reconcile.resync_seconds == 5.0
    assert OperatorSettings.from_env({}).watch.clusterwide


def test_cpu_and_gpu_counts_come_from_the_container_resources_unless_start_params_say_otherwise():
    g = group()
    g["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "500m"},
        "limits": {"cpu": "2", "nvidia.com/gpu": 1},
    }
    command = build_pod(cluster(g), WORKER, g, SETTINGS)["spec"]["containers"][0]["command"]
    assert command[-4:] == ["--num-cpus", "2", "--num-gpus", "1"]
    main = g["template"]["spec"]["containers"][0]
    assert inferred_params(main, {"num-cpus": "8"}) == {"num-cpus": "8", "num-gpus": "1"}
    assert inferred_params({"resources": {"requests": {"cpu": "250m"}}}, {}) == {"num-cpus": "0.25"}
    assert inferred_params({}, {}) == {}


def test_cpu_quantities_parse_like_kubernetes():
    assert [cpu_quantity(q) for q in ("2", "500m", 1.5, "bogus")] == ["2", "0.5", "1.5", None]


def test_every_pod_gets_a_memory_backed_dev_shm_for_the_object_store():
    c = cluster()
    for node_type, spec in ((HEAD, c["spec"]["headGroupSpec"]), (WORKER, group())):
        pod = build_pod(c, node_type, spec, SETTINGS)
        assert pod["spec"]["volumes"] == [{"name": "spindle-shm", "emptyDir": {"medium": "Memory"}}]
        assert pod["spec"]["containers"][0]["volumeMounts"] == [{"name": "spindle-shm", "mountPath": "/dev/shm"}]


def test_a_template_that_mounts_its_own_dev_shm_keeps_it():
    g = group()
    g["template"]["spec"]["volumes"] = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}]
    g["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "shm", "mountPath": "/dev/shm"}]
    pod = build_pod(cluster(), WORKER, g, SETTINGS)
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["shm"]
    assert pod["spec"]["containers"][0]["volumeMounts"] == [{"name": "shm", "mountPath": "/dev/shm"}]
