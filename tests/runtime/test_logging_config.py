"""``spindle.LoggingConfig`` as Ray's: ``init(logging_config=...)`` makes the job's workers (and the driver) log
through the root logger in TEXT or JSON lines carrying Ray's context fields (on a real embedded cluster; the
worker's stderr is read back through the state API's log endpoint)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

import spindle
from spindle.util.state import get_log
from tests.runtime._nodes import wait_until


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    spindle.init(num_cpus=2, logging_config=spindle.LoggingConfig(encoding="JSON", log_level="INFO"))
    try:
        yield
    finally:
        spindle.shutdown()
        for h in logging.getLogger().handlers[:]:  # the driver's handler goes with the cluster
            if type(h.formatter).__name__ == "_Formatter":
                logging.getLogger().removeHandler(h)


def _json_lines(node_id: str, pid: int, needle: str) -> list[dict[str, Any]]:
    text = "".join(get_log(node_id=node_id, pid=pid, suffix="err"))
    out = []
    for line in text.splitlines():
        if needle in line and line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_a_task_s_log_records_are_json_lines_with_ray_s_context_fields() -> None:
    @spindle.remote
    def chatty() -> tuple[str, int, str, str]:
        logging.getLogger("app").info("hello from a task", extra={"user_field": 7})
        logging.getLogger("app").debug("below the level")
        ctx = spindle.get_runtime_context()
        return ctx.get_node_id(), os.getpid(), ctx.get_task_id(), ctx.get_task_name()

    node, pid, task_id, task_name = spindle.get(chatty.remote(), timeout=60)
    found: list[dict[str, Any]] = []
    wait_until(lambda: bool(found.extend(_json_lines(node, pid, "hello from a task")) or found), 60,
               "the task's JSON log line in its worker's log")
    rec = found[0]
    assert rec["message"] == "hello from a task" and rec["levelname"] == "INFO"
    assert rec["filename"] and isinstance(rec["lineno"], int)
    assert rec["task_id"] == task_id and rec["task_name"] == task_name
    assert rec["job_id"] == spindle.get_runtime_context().get_job_id()
    assert rec["node_id"] == node and rec["worker_id"]
    assert rec["user_field"] == 7 and rec["asctime"] and rec["timestamp_ns"] > 0
    assert not _json_lines(node, pid, "below the level")


def test_an_actor_s_log_records_carry_its_actor_id() -> None:
    @spindle.remote
    class Talker:
        def talk(self) -> tuple[str, int, str]:
            logging.getLogger("app").warning("an actor speaks")
            ctx = spindle.get_runtime_context()
            return ctx.get_node_id(), os.getpid(), ctx.get_actor_id()

    node, pid, actor_id = spindle.get(Talker.remote().talk.remote(), timeout=60)
    found: list[dict[str, Any]] = []
    wait_until(lambda: bool(found.extend(_json_lines(node, pid, "an actor speaks")) or found), 60,
               "the actor's JSON log line")
    assert found[0]["actor_id"] == actor_id and found[0]["levelname"] == "WARNING"


def test_a_nested_task_s_worker_logs_json_too() -> None:
    @spindle.remote
    def inner() -> tuple[str, int]:
        logging.getLogger("app").info("hello from a nested task")
        return spindle.get_runtime_context().get_node_id(), os.getpid()

    @spindle.remote
    def outer() -> tuple[str, int]:
        return spindle.get(inner.remote())  # type: ignore[no-any-return]

    node, pid = spindle.get(outer.remote(), timeout=60)
    found: list[dict[str, Any]] = []
    wait_until(lambda: bool(found.extend(_json_lines(node, pid, "hello from a nested task")) or found), 60,
               "the nested task's JSON log line")
    assert found[0]["levelname"] == "INFO"


def test_the_runtime_env_does_not_show_the_logging_config() -> None:
    assert "SPINDLE_LOGGING_CONFIG" not in spindle.get_runtime_context().get_runtime_env_string()


def test_bad_logging_configs_are_refused_with_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="Valid encoding types are"):
        spindle.LoggingConfig(encoding="XML")
    with pytest.raises(ValueError, match="Unknown python logging standard attribute"):
        spindle.LoggingConfig(additional_log_standard_attrs=["nope"])
    with pytest.raises(ValueError, match="Invalid log_level"):
        spindle.LoggingConfig(log_level="LOUD")


def test_text_encoding_puts_the_context_after_the_message() -> None:
    from spindle._logging_config import _Formatter

    record = logging.LogRecord("app", logging.INFO, "/x/job.py", 12, "hi %s", ("there",), None)
    line = _Formatter(False, ["name"]).format(record)
    assert " INFO job.py:12 -- hi there name=app job_id=" in line and "timestamp_ns=" in line
