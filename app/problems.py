"""Every error answer is an RFC 9457 problem document, and this module is where they are made."""

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
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

# RFC 9110's names where Python's HTTPStatus still has the older RFC 7231 ones.
_TITLES = {
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "Content Too Large",
    HTTPStatus.UNPROCESSABLE_ENTITY: "Unprocessable Content",
}


def title(status: int) -> str:
    return _TITLES.get(HTTPStatus(status), HTTPStatus(status).phrase)


class DomainError(Exception):
    status = HTTPStatus.INTERNAL_SERVER_ERROR
    detail = "The server could not complete the request."
    headers: dict[str, str] | None = None
    errors: list[FieldError] | None = None  # a 422 names the offending fields


class TaskNotFound(DomainError):
    status = HTTPStatus.NOT_FOUND
    detail = "Task not found."


class DatabaseUnavailable(DomainError):
    """The database did not answer within its bounds (app/db/database.py); the request may be
    retried."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    detail = "The database is unavailable; retry later."
    headers = {"Retry-After": RETRY_AFTER_SECONDS}  # noqa: RUF012  (never mutated)


class DatabaseNotReady(DatabaseUnavailable):
    detail = "The database is not ready yet; retry later."


class KeysUnavailable(DomainError):
    """The auth server's keys have not been fetched yet (app/http/keys.py): a token cannot be
    checked, and the request may be retried."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    detail = "The keys that verify tokens are not available yet; retry later."
    headers = {"Retry-After": RETRY_AFTER_SECONDS}  # noqa: RUF012  (never mutated)


class TaskLimitReached(DomainError):
    status = HTTPStatus.CONFLICT

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.detail = f"A user can hold at most {limit} tasks; delete some to create more."


class InvalidField(DomainError):
    """A 422 for a rule that the contract states in words, not in its schema."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    detail = "The request does not match the contract."

    def __init__(self, location: Location, field: str, message: str) -> None:
        super().__init__()
        self.errors = [FieldError(location=location, field=field, message=message)]


class CursorOfAnotherListing(InvalidField):
    def __init__(self) -> None:
        super().__init__(
            Location.query,
            "cursor",
            "This cursor belongs to a listing with another order, filter or search;"
            " start again from the first page.",
        )


class PreconditionFailed(DomainError):
    status = HTTPStatus.PRECONDITION_FAILED
    detail = "The task has changed since the version named in If-Match."


class PreconditionRequired(DomainError):
    status = HTTPStatus.PRECONDITION_REQUIRED
    detail = "Send If-Match with the task's ETag (or *) to change it."


class IdempotencyKeyInUse(DomainError):
    status = HTTPStatus.CONFLICT
    detail = "A request with this Idempotency-Key is still being processed; retry shortly."

    def __init__(self) -> None:
        super().__init__()
        self.headers = {"Retry-After": "1"}


class IdempotencyKeysExhausted(DomainError):
    """The user holds MAX_IDEMPOTENCY_KEYS_PER_USER live idempotency records."""

    status = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, limit: int, free_in: int) -> None:
        super().__init__()
        self.detail = (
            f"A user can hold at most {limit} live Idempotency-Keys; the first expires in "
            f"{free_in} s. Retry then, or create without a key."
        )
        self.headers = {"Retry-After": str(max(1, free_in))}


class IdempotencyKeyReused(InvalidField):
    def __init__(self) -> None:
        super().__init__(
            Location.header,
            "Idempotency-Key",
            "This key was used before with a different request body.",
        )


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
    body = Problem(type="about:blank", title=title(status), status=status, detail=detail)
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


def _validation_problem(errors: list[FieldError]) -> JSONResponse:
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    body = ValidationProblem(
        type="about:blank",
        title=title(status),
        status=status,
        detail="The request does not match the contract.",
        errors=errors,
    )
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_JSON)


async def _validation_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _validation_problem([_field_error(error) for error in exc.errors()])


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
    if exc.errors:
        return _validation_problem(exc.errors)
    return problem_response(exc.status, exc.detail, exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error", exc_info=exc)
    return problem_response(HTTPStatus.INTERNAL_SERVER_ERROR, DomainError.detail)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DomainError, _domain_error)
    # A statement that failed for a reason of its own (not the database's availability, which
    # app/db/database.py turns into DatabaseUnavailable) is a 500, answered here inside the app
    # rather than by the server's last-resort handler, which would report it a second time.
    app.add_exception_handler(asyncpg.PostgresError, _unexpected_error)
    app.add_exception_handler(Exception, _unexpected_error)
