"""Structured JSON logs that carry the correlation id from the HTTP request through RPC and events.

The correlation id lives in Nameko's worker context data, which Nameko copies into the headers of every
RPC call and which ``chassis.subscriber`` restores from each event's envelope. ``CorrelationContext``
(a dependency every service declares through ``chassis.service.ServiceBase``) makes it visible to the
log formatter for the duration of each worker.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from nameko.extensions import DependencyProvider

CORRELATION_KEY = "correlation_id"
#: Context key of the client operation a worker serves (see ``chassis.store.StoreSession.creation_id``).
OPERATION_KEY = "operation_key"

_current = threading.local()  # green (per greenthread) once eventlet has patched the process


def current_correlation_id() -> str | None:
    return getattr(_current, "correlation_id", None)


class CorrelationContext(DependencyProvider):
    """Gives every worker a correlation id (the caller's, or the worker's call id) and exposes it."""

    @staticmethod
    def _ensure(worker_ctx: Any) -> str:
        data = worker_ctx.context_data
        if not data.get(CORRELATION_KEY):
            data[CORRELATION_KEY] = worker_ctx.call_id
        return data[CORRELATION_KEY]

    def get_dependency(self, worker_ctx: Any) -> str:
        return self._ensure(worker_ctx)

    def worker_setup(self, worker_ctx: Any) -> None:
        _current.correlation_id = self._ensure(worker_ctx)
        _current.service = self.container.service_name

    def worker_teardown(self, worker_ctx: Any) -> None:
        _current.correlation_id = None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, service, correlation id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        service = getattr(_current, "service", None)
        if service:
            entry["service"] = service
        correlation_id = current_correlation_id()
        if correlation_id:
            entry["correlation_id"] = correlation_id
        for key in ("event_id", "event_type", "queue", "attempt"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


JsonFormatter.converter = __import__("time").gmtime
