"""One log format for every `epoa` process: a JSON object per line in production, so the
log collector indexes fields (request_id, route, status, ms, ...) without parsing prose;
readable text in development. Logs go to standard error: standard output belongs to the
commands that print results (`epoa sign`, `epoa audit verify --json`)."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["json", "text"]

#: The id of the HTTP request being served, set by the API's middleware; every line logged
#: while serving it carries the id, wherever in the code the line comes from.
request_id: ContextVar[str | None] = ContextVar("epoa_request_id", default=None)

_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, plus the current request id if there is one."""
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and k[:1] != "_"}
    current = request_id.get()
    if current is not None:
        fields.setdefault("request_id", current)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = extra_fields(record)
        if not fields:
            return text
        first, newline, rest = text.partition("\n")
        pairs = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{first} {pairs}{newline}{rest}"


def configure(log_format: LogFormat, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one that writes `log_format` lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Library loggers that configure themselves would print a second, unstructured line.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "kafka"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("kafka").setLevel(max(root.level, logging.WARNING))
