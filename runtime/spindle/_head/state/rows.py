"""Ray's state API rows built from the head's tables and the observed state (contract B of CONTRACTS.md).

Read-only snapshots: each function takes the locks it needs briefly and returns plain dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spindle._head.state.store import ObservedState
from spindle._proto import pb

if TYPE_CHECKING:
    from spindle._head.head_state import HeadState
    from spindle._head.jobs.manager import JobManager

ACTOR_STATES = {"DEPENDENCIES_UNREADY": "DEPENDENCIES_UNREADY", "PENDING": "PENDING_CREATION", "ALIVE": "ALIVE",
                "RESTARTING": "RESTARTING", "DEAD": "DEAD"}


def _pids(obs: ObservedState) -> dict[str, tuple[int, str]]:
    """worker id -> (pid, node id), from the agents' last reports (caller holds obs.lock)."""
    return {w.worker_id: (w.pid, nid) for nid, u in obs.nodes.items() for w in u.workers}


def _copy(info: pb.NodeInfo) -> pb.NodeInfo:
    out = pb.NodeInfo()
    out.CopyFrom(info)
    return out


def nodes(head: HeadState, obs: ObservedState) -> list[dict[str, Any]]:
    with head.lock:
        infos = [(_copy(rec.info), rec.view.alive, dict(rec.view.available)) for rec in head.nodes.values()]
    out = []
    with obs.lock:
        for info, alive, available in infos:
            u = obs.usage(info.node_id)
            labels = dict(info.labels)
            state = ("DRAINING" if info.draining else "ALIVE") if alive else "DEAD"
            out.append({
                "node_id": info.node_id, "node_ip": info.ip, "node_name": info.hostname or info.ip,
                "state": state, "is_head_node": bool(info.is_head), "resources_total": dict(info.total.amounts),
                "resources_available": available, "labels": labels,
                "start_time_ms": obs.node_start_ms.get(info.node_id), "end_time_ms": obs.node_end_ms.get(info.node_id),
                "state_message": info.death_reason or None, "agent_address": info.address,
                "cpu_percent": u.cpu_percent if u else None, "mem_used_bytes": u.mem_used_bytes if u else None,
                "mem_total_bytes": u.mem_total_bytes if u else None,
                "object_store_used_bytes": u.object_store_used_bytes if u else None,
                "object_store_total_bytes": u.object_store_total_bytes if u else None,
            })
    return out


def actors(head: HeadState, obs: ObservedState) -> list[dict[str, Any]]:
    with head.lock:
        recs = [(a.spec.actor_id, a.spec.class_name, a.state, a.spec.job_id, a.spec.name, a.spec.namespace,
                 a.node_id, a.worker_id, a.num_restarts, a.death_text, dict(a.spec.placement.amounts),
                 a.spec.detached, a.spec.max_restarts) for a in head.actors.values()]
    with obs.lock:
        pids = _pids(obs)
    out = []
    for aid, cls, state, job, name, ns, node, wid, restarts, death, res, detached, max_restarts in recs:
        pid = pids.get(wid, (None, ""))[0] if state == "ALIVE" else None
        out.append({"actor_id": aid.hex(), "class_name": cls, "state": ACTOR_STATES.get(state, state),
                    "job_id": job.hex(), "name": name, "namespace": ns, "ray_namespace": ns, "node_id": node or None,
                    "pid": pid, "num_restarts": restarts, "death_cause": death or None,
                    "required_resources": res, "is_detached": detached, "max_restarts": max_restarts,
                    "worker_id": wid or None})
    return out


def workers(head: HeadState, obs: ObservedState) -> list[dict[str, Any]]:
    with head.lock:
        ips = {nid: rec.info.ip for nid, rec in head.nodes.items()}
        drivers = [(job_id, dict(job)) for job_id, job in head.jobs.items()]
    out = []
    with obs.lock:
        current = dict(obs.tasks.current)
        for nid, u in obs.nodes.items():
            for w in u.workers:
                task = current.get(w.worker_id)
                out.append({"worker_id": w.worker_id, "node_id": nid, "pid": w.pid, "worker_type": "WORKER",
                            "is_alive": True, "ip": ips.get(nid, ""), "state": w.state.upper(),
                            "current_task_id": task[0] if task else None,
                            "current_task_name": task[1] if task else None,
                            "actor_id": w.actor_id.hex() or None, "address": w.address})
    for job_id, job in drivers:
        host = str(job.get("driver", "")).rsplit(":", 1)[0]
        out.append({"worker_id": f"driver-{job_id.hex()}", "node_id": _node_of(ips, host), "pid": job.get("pid"),
                    "worker_type": "DRIVER", "is_alive": bool(job.get("alive")), "ip": host, "state": "DRIVER",
                    "current_task_id": None, "current_task_name": None, "actor_id": None,
                    "job_id": job_id.hex(), "address": job.get("driver", "")})
    return out


def _node_of(ips: dict[str, str], ip: str) -> str | None:
    return next((nid for nid, nip in ips.items() if nip == ip), None)


def jobs(head: HeadState, manager: JobManager | None) -> list[dict[str, Any]]:
    """Submitted jobs (the job manager's records) and drivers connected on their own, like Ray's list_jobs."""
    out: list[dict[str, Any]] = []
    if manager is not None:
        out.extend(d.to_json() for d in manager.list())
    seen = {j.get("job_id") for j in out if j.get("job_id")}
    with head.lock:
        drivers = [(job_id, dict(job)) for job_id, job in head.jobs.items()]
    for job_id, job in drivers:
        if job_id.hex() in seen:
            continue
        out.append({"type": "DRIVER", "job_id": job_id.hex(), "submission_id": None,
                    "status": "RUNNING" if job.get("alive") else "SUCCEEDED", "entrypoint": "",
                    "start_time": int(float(job.get("start", 0)) * 1000) or None, "end_time": None,
                    "driver_info": {"id": job_id.hex(), "node_ip_address": str(job.get("driver", "")).rsplit(":", 1)[0],
                                    "pid": str(job.get("pid", ""))},
                    "namespace": job.get("namespace", "")})
    return out


def overview(head: HeadState, obs: ObservedState) -> dict[str, Any]:
    node_rows = nodes(head, obs)
    worker_rows = workers(head, obs)
    total: dict[str, float] = {}
    used: dict[str, float] = {}
    store_used = store_total = 0
    for n in node_rows:
        if n["state"] == "DEAD":
            continue
        for k, v in n["resources_total"].items():
            total[k] = total.get(k, 0.0) + v
            used[k] = used.get(k, 0.0) + max(0.0, v - n["resources_available"].get(k, 0.0))
        store_used += n["object_store_used_bytes"] or 0
        store_total += n["object_store_total_bytes"] or int(n["resources_total"].get("object_store_memory", 0))
    with head.lock:
        by_state: dict[str, int] = {}
        for a in head.actors.values():
            s = ACTOR_STATES.get(a.state, a.state)
            by_state[s] = by_state.get(s, 0) + 1
    with obs.lock:
        tasks_by_state = obs.tasks.by_state()
        samples = {n["node_id"]: obs.snapshot_samples(n["node_id"]) for n in node_rows}
    return {
        "cluster": {"resources_total": total, "resources_used": used, "object_store_used_bytes": store_used,
                    "object_store_total_bytes": store_total,
                    "num_nodes_alive": sum(1 for n in node_rows if n["state"] != "DEAD"),
                    "num_workers": sum(1 for w in worker_rows if w["worker_type"] == "WORKER"),
                    "actors_by_state": by_state, "tasks_by_state": tasks_by_state},
        "nodes": [{k: n[k] for k in ("node_id", "node_ip", "node_name", "is_head_node", "state", "cpu_percent",
                                     "mem_used_bytes", "mem_total_bytes", "object_store_used_bytes",
                                     "object_store_total_bytes", "resources_total", "resources_available")}
                  | {"samples": samples.get(n["node_id"], [])} for n in node_rows],
        "workers": worker_rows,
    }


def actor_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = out.setdefault(r["class_name"], {"class_name": r["class_name"], "state_counts": {}})
        entry["state_counts"][r["state"]] = entry["state_counts"].get(r["state"], 0) + 1
    return out


def object_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Ray's ``ObjectSummaries`` of ``list_objects`` rows: counts and sizes per call site."""
    summary: dict[str, dict[str, Any]] = {}
    pids: dict[str, set[Any]] = {}
    ips: dict[str, set[Any]] = {}
    total_mb = 0.0
    for r in rows:
        key = str(r.get("call_site") or "disabled")
        entry = summary.setdefault(key, {"total_objects": 0, "total_size_mb": 0.0, "total_num_workers": 0,
                                         "total_num_nodes": 0, "task_state_counts": {},
                                         "task_attempt_number_counts": {}, "ref_type_counts": {}})
        for field, value in (("task_state_counts", r.get("task_status")),
                             ("task_attempt_number_counts", str(r.get("attempt_number", 0))),
                             ("ref_type_counts", r.get("reference_type"))):
            entry[field][value] = entry[field].get(value, 0) + 1
        entry["total_objects"] += 1
        size = int(r.get("object_size") or -1)
        if size != -1:
            entry["total_size_mb"] += size / 1024**2
            total_mb += size / 1024**2
        pids.setdefault(key, set()).add(r.get("pid"))
        ips.setdefault(key, set()).add(r.get("ip"))
    for key, entry in summary.items():
        entry["total_num_workers"], entry["total_num_nodes"] = len(pids[key]), len(ips[key])
    return {"summary": summary, "total_objects": len(rows), "total_size_mb": total_mb,
            "callsite_enabled": "disabled" not in summary, "summary_by": "callsite"}
