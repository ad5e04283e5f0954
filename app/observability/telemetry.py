"""Traces: FastAPI's own server span per request, and a client span per database statement.

With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, FastAPI configures the
OpenTelemetry SDK from the standard OTEL_* variables at start-up (`auto_configure`), and spans, its
request metrics and its error logs go to that collector over OTLP/HTTP. Without it FastAPI's
telemetry is off, not merely unexported: no span is made, and a request pays one check for a
recording span (FastAPI would otherwise look the global providers up on every request).
"""

import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind

_NOT_TRACED: AbstractContextManager[None] = nullcontext()
_WORD_OR_PARENTHESIS = re.compile(r"[A-Za-z_]+|[()]")
_STATEMENTS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES"})


def export_configured() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}ENDPOINT")
        for signal in ("", "TRACES_", "METRICS_", "LOGS_")
    )


def telemetry_config(tracer_provider: TracerProvider | None = None) -> TelemetryConfig:
    """FastAPI's telemetry: on when OTEL_* variables name a collector or a provider is given."""
    if tracer_provider is not None:
        return {"tracer_provider": tracer_provider, "metrics": False, "logs": False}
    if export_configured():
        return {"auto_configure": True}
    return {"tracing": False, "metrics": False, "logs": False}


class StatementTracer:
    """Makes a statement's span a child of the request's span, when there is one to join."""

    def __init__(self, tracer_provider: TracerProvider | None, database: str) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer("app.db.database")
        self._database = database
        self._names: dict[str, tuple[str, dict[str, Any]]] = {}

    def span(self, query: str) -> AbstractContextManager[None]:
        if not trace.get_current_span().is_recording():
            return _NOT_TRACED
        return self._traced(query)

    @contextmanager
    def _traced(self, query: str) -> Iterator[None]:
        name, attributes = self._names.get(query) or self._describe(query)
        with self._tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
            yield

    def _describe(self, query: str) -> tuple[str, dict[str, Any]]:
        operation = _operation(query)
        attributes = {
            "db.system.name": "postgresql",
            "db.namespace": self._database,
            "db.operation.name": operation,
            "db.query.text": query,  # parameters travel apart: no value of a request is in it
        }
        self._names[query] = described = (f"{operation} {self._database}", attributes)
        return described


def _operation(query: str) -> str:
    """The statement's kind: SELECT, INSERT...; after a WITH list, that of the main statement."""
    depth = 0
    words: list[str] = []
    for part in _WORD_OR_PARENTHESIS.findall(query):
        if part in "()":
            depth += 1 if part == "(" else -1
        elif depth == 0:
            words.append(part.upper())
            if words[-1] in _STATEMENTS:
                return words[-1]
    return words[0] if words else "SQL"


def recording_span() -> Span | None:
    span = trace.get_current_span()
    return span if span.is_recording() else None


def trace_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")
