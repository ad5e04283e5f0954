"""ASGI middleware: the request body's guard, and access logs with a request id."""

import asyncio
import logging
import os
import re
import time
from http import HTTPStatus

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id as current_request_id
from app.problems import RETRY_AFTER_SECONDS, problem_response

MAX_BODY_BYTES = 64 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_logger = logging.getLogger("app.access")


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


class AccessLog:
    """One JSON line per request, with its id (from X-Request-ID, or made), echoed back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            if access_logger.isEnabledFor(logging.INFO):
                access_logger.info(
                    orjson.dumps(
                        {
                            "request_id": request_id,
                            "method": scope["method"],
                            "path": scope["path"],
                            "status": status,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        }
                    ).decode()
                )
