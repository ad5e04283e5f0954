"""ASGI middleware: the request body's guard, and what every request leaves behind (its id, its
access line, its metrics, its span's attributes)."""

import asyncio
import os
import re
import time
from http import HTTPStatus
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logs import AccessLines
from app.observability.logs import request_id as current_request_id
from app.observability.metrics import DURATION, REQUESTS
from app.observability.telemetry import recording_span, trace_id
from app.problems import RETRY_AFTER_SECONDS, problem_response

MAX_BODY_BYTES = 64 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class _BodyTooLarge(Exception):
    pass


class BodyGuard:
    """Answers 413, 415 or 400 for a body that is too large, not JSON, or malformed JSON.

    Runs before routing, so that nothing downstream reads more than MAX_BODY_BYTES or sees a body
    that orjson (strict JSON: no NaN, no lone surrogates) refuses.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not chunked and (length is None or length.strip() == "0"):
            await self.app(scope, receive, send)
            return
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await self._reject(scope, receive, send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            await self._reject(scope, receive, send, HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            return
        try:
            body = await self._read(receive)
        except _BodyTooLarge:
            await self._reject(scope, receive, send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            await self._reject(scope, receive, send, HTTPStatus.BAD_REQUEST)
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _read(receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _BodyTooLarge  # the client left; nothing will be answered anyway
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, status: HTTPStatus) -> None:
        detail = {
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE: f"The body exceeds {MAX_BODY_BYTES} bytes.",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "The request body must be application/json.",
            HTTPStatus.BAD_REQUEST: "The request body is not valid JSON.",
        }[status]
        headers = {"Connection": "close"} if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE else None
        await problem_response(status, detail, headers)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class Observe:
    """Gives every request its id (from X-Request-ID, or made) and echoes it; then counts and
    times the request for /metrics, names its span after the contract's operation, and writes
    its access line (app/observability/logs.py)."""

    def __init__(self, app: ASGIApp, *, access_log: AccessLines | None, metrics: bool) -> None:
        self.app = app
        self._access_log = access_log
        self._metrics = metrics
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode(
            "latin-1"
        )
        request_id = given if _REQUEST_ID.match(given) else os.urandom(16).hex()
        current_request_id.set(request_id)  # for every log line written while handling it
        started = time.perf_counter()
        span = recording_span()
        status = 500
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = True
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                ]
                if span is not None:
                    span.set_attributes(
                        {"app.request_id": request_id, "app.operation_id": _operation(scope)}
                    )
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # The server's shutdown grace ran out: answer what was cancelled, and end quietly.
            if not answered:
                retry = {"Retry-After": RETRY_AFTER_SECONDS, "Connection": "close"}
                detail = "The service is shutting down; retry."
                await problem_response(503, detail, retry)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            operation = _operation(scope)
            if self._metrics:
                self._record(operation, scope["method"], status, elapsed)
            if self._access_log is not None:
                line = {
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "operation_id": operation,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                }
                if span is not None:
                    line["trace_id"] = trace_id(span)
                self._access_log.write(orjson.dumps(line))

    def _record(self, operation: str, method: str, status: int, elapsed: float) -> None:
        key = (operation, method, status)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = REQUESTS.labels(operation, method, str(status))
        counter.inc()
        histogram = self._timed.get(operation)
        if histogram is None:
            histogram = self._timed[operation] = DURATION.labels(operation)
        histogram.observe(elapsed)


def _operation(scope: Scope) -> str:
    """The contract's operationId of the route that took the request; another route's name (the
    contract's own file, /docs, /metrics); `unmatched` for a path that no route takes."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    name = getattr(route, "operation_id", None) or getattr(route, "name", None)
    return str(name or "unmatched")
