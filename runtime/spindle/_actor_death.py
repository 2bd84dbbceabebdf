"""Why an actor died, worded as Ray words it, in one place for the agent, the head and the callers.

Ray's users (and Ray's own tests) read `ActorDiedError` messages to tell a `ray.kill` from a crash,
an `exit_actor()` from a lost node, or a handle that went out of scope: the agent, which sees the
worker process exit, and the head, which decides kills and notices dead nodes, write the cause line
with these functions; the caller adds the actor's identity (class, id, name, namespace, ip) above it.
"""

from __future__ import annotations

import signal

from spindle.exceptions import ActorDiedError, RayTaskError

EXIT_ACTOR = ("The actor is dead because its worker process has died. Worker exit type: INTENDED_USER_EXIT "
              "Worker exit detail: Worker exits by an user request. Worker exits with an exit code 0. "
              "exit_actor() is called.")
KILLED = "The actor is dead because it was killed by `ray.kill`."
OUT_OF_SCOPE = "The actor is dead because all references to the actor were removed."
OWNER_EXITED = "The actor is dead because its owner has died. The owner (the driver of its job) exited."

# KillActorRequest.reason values a caller may send (the head picks the text)
REASON_KILL = ""
REASON_OUT_OF_SCOPE = "out_of_scope"


def worker_exited(code: int | None, killed: bool) -> str:
    """The cause line for an actor whose worker process exited with ``code`` (negative: a signal)."""
    if killed:
        return KILLED
    if code == 0:
        return EXIT_ACTOR
    if code is not None and code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        detail = f"Worker unexpectedly exits with signal {sig} (exit code {code})."
    else:
        detail = f"Worker unexpectedly exits with exit code {code}."
    return ("The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit "
            f"detail: {detail} Some common causes: the process was killed by the OOM killer, it called os._exit(), "
            "or it crashed (SIGSEGV).")


def owner_died(owner_worker_id: str, owner_ip: str, node_address: str) -> str:
    """A ``kill_reason`` phrase for an actor whose owner (a worker) exited, or whose owner's node died."""
    how = f"The owner's node (at {node_address}) died." if node_address else "The owner's worker process exited."
    return f"its owner has died. Owner Id: {owner_worker_id} Owner Ip address: {owner_ip}. {how}"


def node_died(node_id: str, address: str, reason: str) -> str:
    return f"The actor died because its node has died. Node Id: {node_id} (at {address}): {reason}."


def kill_reason(reason: str) -> str:
    """The cause line for a kill the head carries out (``reason`` names why, empty = ``kill()``)."""
    if reason == REASON_OUT_OF_SCOPE:
        return OUT_OF_SCOPE
    if not reason:
        return KILLED
    return f"The actor is dead because {reason}."


def header(class_name: str, actor_id_hex: str, name: str, namespace: str, ip: str) -> str:
    """The lines Ray puts above the cause: which actor this was and where it ran."""
    lines = ["The actor died unexpectedly before finishing this task.", f"\tclass_name: {class_name}",
             f"\tactor_id: {actor_id_hex}"]
    if name:
        lines.append(f"\tname: {name}")
    if namespace:
        lines.append(f"\tnamespace: {namespace}")
    if ip:
        lines.append(f"\tip: {ip}")
    return "\n".join(lines)


def died_error(actor_id: bytes, class_name: str, name: str, namespace: str, worker_address: str, cause_line: str,
               creation_error: BaseException | None = None) -> ActorDiedError:
    """The ActorDiedError a caller gets: Ray's message (identity lines, then the cause line) and fields."""
    if creation_error is not None:
        if not isinstance(creation_error, RayTaskError):
            creation_error = RayTaskError(f"{class_name}.__init__", str(creation_error), creation_error)
        err = ActorDiedError(creation_error, actor_id=actor_id.hex())
        return err
    ip = worker_address.rsplit(":", 1)[0] if worker_address else ""
    text = header(class_name, actor_id.hex(), name, namespace, ip) + "\n" + (cause_line or "The actor is dead.")
    return ActorDiedError(text, actor_id=actor_id.hex())
