"""Query plans at scale, of the statements the service sends: every list and search walks the
owner's index without a sort, a single task is found by its key, counts read the owner's row
alone, and a bulk write with nothing to do reads no task. On a database of its own holding 50
users with 2,000 tasks each, and 5,000 users without; each request's statement is captured as the
service sends it, with its arguments, and planned as the service's connections plan it: generic
plans, no other planner setting changed."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.db.migrate import upgrade
from tests.conftest import Sent, serving
from tests.support.databases import connect, recreate_database

LOAD = """
INSERT INTO users (id, task_count, completed_count)
SELECT 'u' || u, 2000, 500 FROM generate_series(1, 50) u;
INSERT INTO tasks (user_id, title, description, is_completed, completed_at, created_at)
SELECT 'u' || u, 'Task ' || t || ' of user ' || u || ': ' || md5(u || '/' || t),
       CASE WHEN t % 3 = 0 THEN 'Details ' || md5(t || '/' || u) END,
       t % 4 = 0, CASE WHEN t % 4 = 0 THEN now() END,
       timestamptz '2026-01-01' + t * interval '1 minute'
FROM generate_series(1, 50) u, generate_series(1, 2000) t;
INSERT INTO users (id, task_count, completed_count) VALUES ('done', 3, 3), ('idle', 3, 0);
INSERT INTO users (id) SELECT 'n' || n FROM generate_series(1, 5000) n;
INSERT INTO tasks (user_id, title, is_completed, completed_at)
SELECT u, 'Task ' || t, u = 'done', CASE WHEN u = 'done' THEN now() END
FROM unnest(ARRAY['done', 'idle']) u, generate_series(1, 3) t;
ANALYZE;
"""


@pytest.fixture(scope="module")
def plans_url(database_url: str) -> str:
    url = asyncio.run(recreate_database(database_url, "tasks_plans"))
    upgrade(url)

    async def load() -> None:
        async with connect(url) as connection:
            await connection.execute(LOAD)

    asyncio.run(load())
    return url


@pytest.fixture
async def plans_client(plans_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(_env_file=None, migrate_on_start=False)
    async with serving(plans_url, settings) as client:
        yield client


async def _plan(url: str, query: str, args: tuple[Any, ...], *, analyze: bool = False) -> str:
    """The plan of a statement as the service's connections run it: the generic one
    (app/db/database.py). With analyze, the statement runs, in a transaction that is rolled
    back."""
    async with connect(url) as connection:
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        prepared = await connection.prepare(query)
        types = [
            await connection.fetchval("SELECT format_type($1, NULL)", parameter.oid)
            for parameter in prepared.get_parameters()
        ]
        literals = [
            "NULL"
            if arg is None
            else await connection.fetchval(f"SELECT quote_literal($1::{type_})", arg)
            for arg, type_ in zip(args, types, strict=True)
        ]
        await connection.execute(f"PREPARE planned AS {query}")
        options = "ANALYZE, COSTS OFF" if analyze else "COSTS OFF"
        transaction = connection.transaction()
        await transaction.start()
        try:
            rows = await connection.fetch(
                f"EXPLAIN ({options}) EXECUTE planned({', '.join(literals)})"
            )
        finally:
            await transaction.rollback()
    return "\n".join(row[0] for row in rows)


async def _sent_plan(
    client: httpx.AsyncClient,
    sent: Sent,
    url: str,
    method: str,
    path: str,
    *,
    analyze: bool = False,
    **request: Any,
) -> str:
    sent.clear()
    response = await client.request(method, path, **request)
    assert response.status_code == (204 if method == "DELETE" and "/tasks/" in path else 200), (
        response.text
    )
    assert len(sent) == 1
    return await _plan(url, sent[0].query, sent[0].args, analyze=analyze)


LISTS = [
    {},
    {"completed": "true"},
    {"order": "newest"},
    {"order": "newest", "completed": "false"},
    {"q": "a3f"},
    {"q": "a3f", "completed": "true", "order": "newest"},
    {"q": "TASK"},
]


@pytest.mark.parametrize("params", LISTS, ids=str)
async def test_lists_and_searches_walk_the_owners_index_without_a_sort(
    plans_client: httpx.AsyncClient, sent: Sent, plans_url: str, params: dict[str, str]
) -> None:
    first = await plans_client.get("/users/u7/tasks", params={**params, "limit": 2})
    link = first.headers["link"]
    next_page = link[1 : link.index(">")]
    for path, query in (("/users/u7/tasks", {**params, "limit": "100"}), (next_page, None)):
        plan = await _sent_plan(plans_client, sent, plans_url, "GET", path, params=query)
        assert "tasks_user_created_id" in plan, plan
        assert "Sort" not in plan, plan
        assert "Seq Scan" not in plan, plan
        assert ("Index Scan Backward" in plan) is (params.get("order") == "newest"), plan


async def test_one_task_is_found_by_its_key_and_counts_read_the_owners_row(
    plans_client: httpx.AsyncClient, sent: Sent, plans_url: str
) -> None:
    task = (await plans_client.get("/users/u7/tasks", params={"limit": 1})).json()[0]
    path = f"/users/u7/tasks/{task['id']}"
    for method, body, headers in (
        ("GET", None, {}),
        ("PATCH", {"title": "renamed"}, {"If-Match": '"1"'}),
        ("PUT", {"title": "replaced", "is_completed": True}, {}),
        ("PATCH", None, {}),
    ):
        target = path if body is not None or method == "GET" else f"{path}/complete"
        plan = await _sent_plan(
            plans_client, sent, plans_url, method, target, json=body, headers=headers
        )
        assert "Seq Scan" not in plan, plan
        assert "tasks_pkey" in plan or "tasks_user_created_id" in plan, plan
    plan = await _sent_plan(plans_client, sent, plans_url, "GET", "/users/u7/tasks/counts")
    assert "users_pkey" in plan, plan
    assert "tasks" not in plan, plan


@pytest.mark.parametrize(
    ("method", "path", "request_"),
    [
        ("PATCH", "/users/done/tasks", {"json": {"is_completed": True}}),
        ("PATCH", "/users/idle/tasks", {"json": {"is_completed": False}}),
        ("DELETE", "/users/idle/tasks", {"params": {"completed": "true"}}),
        ("DELETE", "/users/done/tasks", {"params": {"completed": "false"}}),
    ],
)
async def test_a_bulk_write_with_nothing_to_do_reads_no_task(
    plans_client: httpx.AsyncClient,
    sent: Sent,
    plans_url: str,
    method: str,
    path: str,
    request_: dict[str, Any],
) -> None:
    """Complete all for a user whose tasks are all completed (and the like) is decided by the
    owner's counts alone."""
    plan = await _sent_plan(plans_client, sent, plans_url, method, path, analyze=True, **request_)
    assert "One-Time Filter" in plan, plan
    scans = [line for line in plan.splitlines() if "Scan" in line and "on tasks" in line]
    assert scans, plan
    assert all("never executed" in line for line in scans), plan


async def test_a_bulk_write_reads_only_its_owners_tasks(
    plans_client: httpx.AsyncClient, sent: Sent, plans_url: str
) -> None:
    for method, request_ in (
        ("PATCH", {"json": {"is_completed": True}}),
        ("DELETE", {"params": {"completed": "false"}}),
    ):
        plan = await _sent_plan(
            plans_client, sent, plans_url, method, "/users/u8/tasks", **request_
        )
        assert "tasks_user_created_id" in plan, plan
        assert "Seq Scan on tasks" not in plan, plan


async def test_a_keyed_create_counts_the_owners_live_keys_from_their_index(
    plans_client: httpx.AsyncClient, plans_url: str, sent: Sent
) -> None:
    """MAX_IDEMPOTENCY_KEYS_PER_USER: the count reads the owner's entries of the index on
    (user_id, expires_at), never the table's other keys."""
    async with connect(plans_url) as connection:
        await connection.execute(
            """INSERT INTO idempotency_keys
                   (user_id, key, fingerprint, status, body, location, etag, expires_at)
               SELECT 'u' || u, 'k' || k, '\\x00', 201, '{}', '/', '"1"',
                   now() + k * interval '1 second'
               FROM generate_series(1, 50) u, generate_series(1, 200) k;
               ANALYZE idempotency_keys"""
        )
    sent.clear()
    created = await plans_client.post(
        "/users/u7/tasks", json={"title": "keyed"}, headers={"Idempotency-Key": "new-key"}
    )
    assert created.status_code == 201, created.text
    assert len(sent) == 1
    plan = await _plan(plans_url, sent[0].query, sent[0].args)
    counting = plan[plan.index("CTE keys_held") :].split("CTE ", 2)[1]
    assert "idempotency_keys_user_id_expires_at" in counting, plan
    assert "Seq Scan" not in counting, plan
