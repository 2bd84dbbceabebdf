"""``spindle.LoggingConfig``: Ray's job-wide logging setup (``init(logging_config=LoggingConfig(...))``).

Ray users configure the root logger of the driver and of every task and actor process of the job at once:
``encoding="TEXT"`` or ``"JSON"`` (one JSON object per line, for log shippers) and ``log_level``. Each record
carries the Ray context fields (job_id, worker_id, node_id, and task_id/task_name/task_func_name or
actor_id/actor_name when there is one) besides the logger's own (asctime, levelname, message, filename,
lineno, ...). The driver applies it at ``init``; the job's tasks carry it in the ``SPINDLE_LOGGING_CONFIG``
variable and a worker applies it once, before the first task or actor constructor that carries it runs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

ENV_VAR = "SPINDLE_LOGGING_CONFIG"
ENCODINGS = ("TEXT", "JSON")
# the LogRecord attributes a user may add to each line (Python's standard ones)
STANDARD_ATTRS = frozenset({
    "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName", "levelname", "levelno", "lineno",
    "message", "module", "msecs", "msg", "name", "pathname", "process", "processName", "relativeCreated",
    "stack_info", "thread", "threadName", "taskName",
})
_BUILT_IN = ("asctime", "levelname", "message", "filename", "lineno", "exc_text", "process")
_CONTEXT = ("job_id", "worker_id", "node_id", "actor_id", "task_id", "actor_name", "task_name", "task_func_name")


@dataclass
class LoggingConfig:
    """Ray's ``LoggingConfig(encoding="TEXT", log_level="INFO", additional_log_standard_attrs=[])``."""

    encoding: str = "TEXT"
    log_level: str = "INFO"
    additional_log_standard_attrs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"Invalid encoding type: {self.encoding}. Valid encoding types are: {list(ENCODINGS)}")
        for attr in self.additional_log_standard_attrs:
            if attr not in STANDARD_ATTRS:
                raise ValueError(f"Unknown python logging standard attribute: {attr}. The valid attributes are: "
                                 f"{sorted(STANDARD_ATTRS)}")
        if logging.getLevelName(str(self.log_level).upper()) == f"Level {str(self.log_level).upper()}":
            raise ValueError(f"Invalid log_level {self.log_level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoggingConfig:
        known = {"encoding", "log_level", "additional_log_standard_attrs"}
        return cls(**{k: v for k, v in d.items() if k in known})

    def _apply(self) -> None:
        """Configure this process's root logger (what Ray does in the driver and in each worker)."""
        handler = logging.StreamHandler()
        handler.setLevel(self.log_level)
        handler.setFormatter(_Formatter(self.encoding == "JSON", self.additional_log_standard_attrs))
        root = logging.getLogger()
        for h in root.handlers[:]:
            if isinstance(h.formatter, _Formatter):  # a previous LoggingConfig's handler
                root.removeHandler(h)
        root.setLevel(self.log_level)
        root.addHandler(handler)


_applied = ""


def apply_from_env() -> None:
    """In a worker: apply the job's config once the running task's environment carries it (or a new one)."""
    global _applied
    text = os.environ.get(ENV_VAR, "")
    if not text or text == _applied:
        return
    _applied = text
    try:
        LoggingConfig.from_dict(json.loads(text))._apply()
    except (ValueError, TypeError) as e:
        logging.getLogger("spindle").warning("ignoring the job's logging_config %r: %s", text, e)


def _context() -> dict[str, str]:
    """The Ray context fields of the current process and task (those that have a value)."""
    from spindle._core.context import maybe_core

    cw = maybe_core()
    if cw is None:
        return {}
    out = {"job_id": cw.job_id.hex(), "worker_id": cw.worker_id, "node_id": cw.node_id}
    ex = cw.executor
    if ex is not None:
        if ex.actor_spec is not None:
            out["actor_id"] = ex.actor_spec.actor_id.hex()
            out["actor_name"] = ex.actor_spec.name
        if ex.ctx.task_id:
            out["task_id"] = ex.ctx.task_id.hex()
            out["task_name"] = ex.ctx.name
            out["task_func_name"] = ex.ctx.function_name
    return {k: v for k, v in out.items() if v}


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool, extra_attrs: list[str]):
        super().__init__()
        self.as_json = as_json
        self.extra_attrs = list(extra_attrs)

    def _fields(self, record: logging.LogRecord) -> dict[str, Any]:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        out: dict[str, Any] = {k: getattr(record, k, None) for k in _BUILT_IN}
        if not out["exc_text"]:
            del out["exc_text"]
        for attr in self.extra_attrs:
            out[attr] = getattr(record, attr, None)
        out.update(_context())
        for k, v in record.__dict__.items():  # logger.info(..., extra={...})
            if k not in STANDARD_ATTRS and k not in out and not k.startswith("_"):
                out[k] = v
        out["timestamp_ns"] = int(record.created * 1e9) if record.created else time.time_ns()
        return out

    def format(self, record: logging.LogRecord) -> str:
        f = self._fields(record)
        if self.as_json:
            return json.dumps(f, default=str)
        head = f"{f.pop('asctime')} {f.pop('levelname')} {f.pop('filename')}:{f.pop('lineno')} -- {f.pop('message')}"
        exc = f.pop("exc_text", None)
        f.pop("process", None)
        line = head + "".join(f" {k}={v}" for k, v in f.items())
        return f"{line}\n{exc}" if exc else line
