"""The head's recovery rules, exactly: what it adopts, what it calls stale, what it settles after the grace.

In-process HeadState objects (no server); a second HeadState on the same SQLite file is the
"replaced head". The end-to-end behaviour with real processes is in test_head_restart.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from spindle._head.head_state import HeadState
from spindle._head.tables import MemoryTables, SqliteTables
from spindle._proto import pb
from spindle._rpc.channels import Channels

JOB = (7).to_bytes(4, "big")


def _head(tables: object = None) -> HeadState:
    return HeadState(Channels("t"), "session", tables=tables or MemoryTables())  # type: ignore[arg-type]


def _spec(actor_id: bytes, name: str = "", detached: bool = False, max_restarts: int = 0) -> pb.ActorSpec:
    return pb.ActorSpec(actor_id=actor_id, class_name="Counter", name=name, namespace="app", detached=detached,
                        job_id=JOB, max_restarts=max_restarts, owner_address="10.0.0.9:1")


def _node(node_id: str = "n1") -> pb.NodeInfo:
    return pb.NodeInfo(node_id=node_id, address=f"{node_id}:1", ip="127.0.0.1")


def _live(actor_id: bytes, incarnation: int = 0, **kw: object) -> pb.LiveActor:
    return pb.LiveActor(spec=_spec(actor_id, **kw), incarnation=incarnation,  # type: ignore[arg-type]
                        worker_address="w:1", worker_id="w1")


def test_a_fresh_head_adopts_reported_actors_with_their_names_and_rebuilds_their_job() -> None:
    head = _head()
    head.register_node(_node(), [_live(b"a", incarnation=2, name="keeper")], rejoining=True)
    rec = head.actors[b"a"]
    assert (rec.state, rec.worker_address, rec.node_id, rec.incarnation) == ("ALIVE", "w:1", "n1", 2)
    assert head.named[("app", "keeper")] == b"a"
    assert head.jobs[JOB]["alive"] and JOB in head.recovery.awaiting_jobs
    assert head.recovery.restarted


def test_an_older_incarnation_than_the_head_knows_is_stale() -> None:
    head = _head()
    head.register_node(_node(), [_live(b"a", incarnation=3)])
    with head.lock:
        stale = head.recovery.adopt("n1", [_live(b"a", incarnation=2)], rejoining=True)
    assert stale == [("n1:1", b"a")]
    assert head.actors[b"a"].incarnation == 3


def test_a_head_that_never_saw_a_predecessor_answers_lookups_at_once() -> None:
    head = _head()
    started = time.monotonic()
    info = head.get_actor(pb.GetActorRequest(name="missing", namespace="app"))
    assert not info.found and time.monotonic() - started < 1.0
    assert not head.recovery.restarted


def test_a_replaced_head_reloads_its_tables_and_settles_what_nobody_claims(tmp_path: Path) -> None:
    db = tmp_path / "head.db"
    first = _head(SqliteTables(str(db)))
    first.register_job(pb.RegisterJobRequest(driver_address="d:1", namespace="app"))
    first.register_node(_node(), [_live(b"lost", name="gone"), _live(b"back", name="keeper", detached=True)])
    first.kv["k"] = b"v"
    first.recovery.save_kv("k")
    first.recovery.tables.close()

    second = _head(SqliteTables(str(db)))
    assert second.recovery.restarted
    assert second.kv == {"k": b"v"}
    assert second.named == {("app", "gone"): b"lost", ("app", "keeper"): b"back"}
    assert {a: r.state for a, r in second.actors.items()} == {b"lost": "RESTARTING", b"back": "RESTARTING"}
    assert second._job_counter >= 1 and set(second.recovery.awaiting_jobs) == set(second.jobs)
    second.register_node(_node(), [_live(b"back", name="keeper", detached=True)], rejoining=True)
    assert second.actors[b"back"].state == "ALIVE"

    second.recovery.settle(time.monotonic() + second.recovery.grace_s + 1)
    lost = second.actors[b"lost"]
    assert lost.state == "DEAD" and "did not report it to the restarted head" in lost.death_text
    assert ("app", "gone") not in second.named
    assert all(not j["alive"] for j in second.jobs.values())  # no driver came back for them
    assert second.actors[b"back"].state == "ALIVE"  # detached: outlives its job
