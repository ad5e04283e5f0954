"""Tests run against real PostgreSQL: TEST_DATABASE_URL, or an embedded server under .data/.

`make test` spreads the test files over several processes (pytest-xdist): each has a database of
its own on that server (test_gw0, test_gw1, ...), migrated once. Run alone, pytest uses
TEST_DATABASE_URL's database itself.
"""

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asyncpg.connection import Connection
from asyncpg.prepared_stmt import PreparedStatement
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from app.config import Settings
from app.db.embedded import start_embedded_postgres
from app.db.migrate import upgrade
from app.http.main import create_app
from tests.support.databases import execute, recreate_database

# The session's database is migrated once, below; the apps the tests make serve it at once.
os.environ["MIGRATE_ON_START"] = "false"
# Tests share one app per process, and its budgets with it: the rate limits have tests of their own
# (tests/test_rate_limits.py), with apps of their own.
os.environ["RATE_LIMIT_READS"] = os.environ["RATE_LIMIT_WRITES"] = "off"
os.environ["MAX_REQUESTS_IN_FLIGHT_PER_USER"] = "10000"


async def truncate(database_url: str) -> None:
    await execute(database_url, "TRUNCATE users, tasks, idempotency_keys")


def pytest_configure(config: pytest.Config) -> None:
    """The embedded server, started once by the process that runs or hands out the tests."""
    if not os.environ.get("TEST_DATABASE_URL") and not hasattr(config, "workerinput"):
        os.environ["TEST_DATABASE_URL"] = start_embedded_postgres("test-postgres")


@pytest.fixture(scope="session")
def database_url() -> str:
    url = os.environ["TEST_DATABASE_URL"]
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        url = asyncio.run(recreate_database(url, f"test_{worker}"))
    else:
        asyncio.run(execute(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"))
    upgrade(url)
    return url


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(database_url=database_url)
    async with application.router.lifespan_context(application) as state:
        application.state.lifespan_state = state
        yield application


@pytest.fixture
async def client(app: FastAPI, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await truncate(database_url)
    state = app.state.lifespan_state
    transport = httpx.ASGITransport(app=_with_state(app, state))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def _with_state(app: FastAPI, state: dict[str, Any]) -> Any:
    """ASGITransport does not run the lifespan; hand each request the lifespan's state."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["state"] = dict(state)
        await app(scope, receive, send)

    return asgi


@asynccontextmanager
async def serving(
    database_url: str,
    settings: Settings | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app of its own, its lifespan running for the duration."""
    application = create_app(settings, database_url=database_url, tracer_provider=tracer_provider)
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=_with_state(application, dict(state or {})))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def create_task(
    client: httpx.AsyncClient, user_id: str = "alice", **fields: Any
) -> dict[str, Any]:
    response = await client.post(f"/users/{user_id}/tasks", json={"title": "Buy milk", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


async def listing_pages(client: httpx.AsyncClient, url: str) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following its Link headers from `url`."""
    found = []
    next_url: str | None = url
    while next_url:
        response = await client.get(next_url)
        assert response.status_code == 200
        found.append(response.json())
        link = response.headers.get("link")
        next_url = LINK.match(link).group("url") if link else None  # type: ignore[union-attr]
    return found


@dataclass(frozen=True)
class Statement:
    """A statement the app sent to PostgreSQL, with its arguments."""

    query: str
    args: tuple[Any, ...]


Sent = list[Statement]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Every statement the app sends to PostgreSQL from now on, transaction control included."""
    statements: Sent = []

    def recording(method: Any, arguments: Any) -> Any:
        async def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
            if (statement := arguments(self, *args)) is not None:
                statements.append(Statement(*statement))
            return await method(self, *args, **kwargs)

        return recorded

    def prepared(statement: PreparedStatement, *args: Any) -> tuple[str, tuple[Any, ...]]:
        return statement.get_query(), args

    # Connection._execute(query, args, limit, timeout, ...) runs every fetch of a connection, and
    # execute(query, *args) with arguments; execute(query) alone goes straight to the protocol.
    monkeypatch.setattr(
        Connection,
        "_execute",
        recording(Connection._execute, lambda _, query, args, *rest: (query, tuple(args))),
    )
    monkeypatch.setattr(
        Connection,
        "execute",
        recording(Connection.execute, lambda _, query, *args: None if args else (query, ())),
    )
    for name in ("fetch", "fetchrow", "fetchval", "executemany"):
        method = getattr(PreparedStatement, name)
        monkeypatch.setattr(PreparedStatement, name, recording(method, prepared))
    return statements
