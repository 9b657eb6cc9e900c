"""One logging setup for both services: readable console lines, JSON lines in a file.

Both sinks run in a listener thread behind a queue, so logging never blocks the event loop on
file I/O. Every event passes through the secret redactor first.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
from pathlib import Path
from typing import Any

import structlog

from firebox.common import tracing
from firebox.common.secrets import redactor

_listener: logging.handlers.QueueListener | None = None


def _redact(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: redactor.value(v, k) for k, v in event_dict.items()}


def add_trace_ids(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """trace_id and span_id of the current span (tracing on, inside one), to join logs to traces."""
    ids = tracing.current_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


class _PassThroughQueueHandler(logging.handlers.QueueHandler):
    """Hands the record over unformatted (the listener's handlers render it); when the queue is
    full the record is dropped and counted rather than blocking the caller."""

    dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            type(self).dropped += 1


def configure(service: str, log_dir: Path | None, level: str = "info", json_console: bool = False) -> None:
    """Set up structlog and the stdlib handlers; call once per process, before serving."""
    global _listener
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    foreign = [*shared, structlog.processors.format_exc_info]
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level.upper())
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer()
                if json_console
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
            ],
            foreign_pre_chain=foreign,
        )
    )
    handlers: list[logging.Handler] = [console]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_dir / f"{service}.log", maxBytes=50 * 1024 * 1024, backupCount=5, encoding="utf-8"
        )
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.dict_tracebacks,
                    structlog.processors.JSONRenderer(),
                ],
                foreign_pre_chain=foreign,
            )
        )
        handlers.append(file_handler)

    if _listener is not None:
        _listener.stop()
    records: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=10_000)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_PassThroughQueueHandler(records))
    root.setLevel(logging.DEBUG)
    for noisy in (
        "docker",
        "urllib3",
        "asyncio",
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "openai",
        "grpc",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    _listener.start()


def shutdown() -> None:
    """Flush and stop the listener thread."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def dropped_log_lines() -> int:
    """Console and file log lines dropped because the queue was full."""
    return _PassThroughQueueHandler.dropped


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
