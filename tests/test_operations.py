"""What operators rely on: readiness, database outages, restarts, query plans."""

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from asyncpg.connection import Connection
from asyncpg.prepared_stmt import PreparedStatement

from app.config import Settings
from app.tasks import GET, LIST
from tests.conftest import create_task, serving
from tests.databases import connect


async def test_database_down_is_503_with_retry_after_and_health_stays_up() -> None:
    async with serving("postgresql://postgres@127.0.0.1:1/nothing") as client:
        assert (await client.get("/health")).status_code == 200
        for response in (
            await client.get("/ready"),
            await client.get("/users/alice/tasks"),
            await client.post("/users/alice/tasks", json={"title": "x"}),
        ):
            assert response.status_code == 503
            assert response.headers["retry-after"] == "2"
            assert response.headers["content-type"] == "application/problem+json"
            assert "127.0.0.1" not in response.text


async def test_tasks_survive_a_restart(client: httpx.AsyncClient, database_url: str) -> None:
    task = await create_task(client)
    async with serving(database_url) as restarted:
        response = await restarted.get(f"/users/alice/tasks/{task['id']}")
        assert response.json() == task


async def test_every_operation_is_one_statement(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []

    def counting(method: Any) -> Any:
        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            query = self.get_query() if isinstance(self, PreparedStatement) else args[0]
            statements.append(query)
            return await method(self, *args, **kwargs)

        return counted

    monkeypatch.setattr(Connection, "_execute", counting(Connection._execute))
    for name in ("fetch", "fetchrow", "fetchval", "executemany"):
        monkeypatch.setattr(PreparedStatement, name, counting(getattr(PreparedStatement, name)))
    task = await create_task(client)
    assert len(statements) == 1  # the owner's row and the task, in one statement
    url = f"/users/alice/tasks/{task['id']}"
    for method, target, body in (
        ("GET", url, None),
        ("PUT", url, {"title": "t"}),
        ("PATCH", url, {"title": "u"}),
        ("PATCH", url + "/complete", None),
        ("GET", "/users/alice/tasks?limit=1", None),
        ("GET", "/users/alice/tasks?completed=true", None),
        ("DELETE", url, None),
    ):
        statements.clear()
        response = await client.request(method, target, json=body)
        assert response.status_code < 300
        assert len(statements) == 1, (method, target, statements)
    statements.clear()
    assert (await client.get("/health")).status_code == 200
    assert statements == []


async def test_get_and_list_use_the_index(database_url: str) -> None:
    cursor = (datetime(2026, 1, 1, tzinfo=UTC), uuid4())
    statements = {
        "get": (GET, "alice", uuid4()),
        **{
            f"list filtered={filtered} after_cursor={after}": (
                query,
                "alice",
                101,
                *([True] if filtered else []),
                *(cursor if after else ()),
            )
            for (filtered, after), query in LIST.items()
        },
    }
    async with connect(database_url) as connection:
        await connection.execute("SET enable_seqscan = off")  # tiny tables: ask what it can use
        for name, (query, *args) in statements.items():
            plan = "\n".join(row[0] for row in await connection.fetch(f"EXPLAIN {query}", *args))
            assert "Seq Scan" not in plan, (name, plan)
            assert "Index" in plan, (name, plan)
            if name != "get":
                assert "tasks_user_created_id" in plan, (name, plan)
                assert "Sort" not in plan, (name, plan)


async def test_cors_allows_only_configured_origins(database_url: str) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    configured = Settings(cors_origins="https://app.example", _env_file=None)
    for settings, allowed in ((configured, True), (Settings(_env_file=None), False)):
        async with serving(database_url, settings) as client:
            response = await client.options("/users/alice/tasks", headers=preflight)
            assert ("access-control-allow-origin" in response.headers) is allowed
            other = await client.get("/health", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    assert response.status_code == 405  # without CORS, OPTIONS is not an operation
