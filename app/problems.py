"""Every error answer is an RFC 9457 problem document, and this module is where they are made."""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from generated.models import FieldError, Location, Problem, ValidationProblem

logger = logging.getLogger("app.errors")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "2"


class DomainError(Exception):
    status = HTTPStatus.INTERNAL_SERVER_ERROR
    detail = "The server could not complete the request."
    headers: dict[str, str] | None = None


class TaskNotFound(DomainError):
    status = HTTPStatus.NOT_FOUND
    detail = "Task not found."


class DatabaseUnavailable(DomainError):
    """The database did not answer within its bounds (app/db.py); the request may be retried."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    detail = "The database is unavailable; retry later."
    headers = {"Retry-After": RETRY_AFTER_SECONDS}  # noqa: RUF012  (never mutated)


class DatabaseNotReady(DatabaseUnavailable):
    detail = "The database is not ready yet; retry later."


class Unauthorized(DomainError):
    """RFC 6750: a challenge always; `error="invalid_token"` when a token was sent."""

    status = HTTPStatus.UNAUTHORIZED
    detail = "A valid bearer token is required."

    def __init__(self, reason: str, *, token_sent: bool) -> None:
        super().__init__(reason)
        challenge = 'Bearer realm="tasks"'
        if token_sent:
            challenge += ', error="invalid_token"'
        self.headers = {"WWW-Authenticate": challenge}


class Forbidden(DomainError):
    status = HTTPStatus.FORBIDDEN
    detail = "The token does not grant access to this user's tasks."


def problem_response(
    status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = Problem(
        type="about:blank", title=HTTPStatus(status).phrase, status=status, detail=detail
    )
    return JSONResponse(
        body.model_dump(), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


def problem_body(status: int, detail: str) -> bytes:
    """A problem document's bytes, for answers the server writes before the app sees a request."""
    return bytes(problem_response(status, detail).body)


def _field_error(error: dict[str, Any]) -> FieldError:
    location, *path = error["loc"] or ("body",)
    if location not in Location.__members__:
        location, path = "body", [location, *path]
    return FieldError(
        location=Location(location),
        field=".".join(str(part) for part in path),
        message=error["msg"],
    )


async def _validation_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    body = ValidationProblem(
        type="about:blank",
        title=status.phrase,
        status=status,
        detail="The request does not match the contract.",
        errors=[_field_error(error) for error in exc.errors()],
    )
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_JSON)


def _allowed_methods(request: Request) -> str:
    """Every method of the routes on this path; Starlette's 405 names only the first route's."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = _allowed_methods(request)
        detail = f"{request.method} is not allowed here; use {headers['Allow']}."
    elif exc.status_code == HTTPStatus.NOT_FOUND:
        detail = "No such resource."
    else:
        detail = str(exc.detail)
    return problem_response(exc.status_code, detail, headers)


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problem_response(exc.status, exc.detail, exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error", exc_info=exc)
    return problem_response(HTTPStatus.INTERNAL_SERVER_ERROR, DomainError.detail)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(Exception, _unexpected_error)
