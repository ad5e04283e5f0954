"""Query plans at scale: every list walks its index without a sort, a search finds one user's
matches through the user's keys in the search index, counts read the owner's row alone. On a
database of its own holding 50 users with 2,000 tasks each, planned as the app's connections plan
them: generic plans, no other planner setting changed."""

import asyncio
import itertools
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from app.completion import SET_ALL_COMPLETION
from app.migrate import upgrade
from app.search import contains, search_keys
from app.tasks import COUNT, DELETE_ALL, GET, LIST, ListShape
from tests.databases import connect, recreate_database

LOAD = """
INSERT INTO users (id, task_count, completed_count)
SELECT 'u' || u, 2000, 500 FROM generate_series(1, 50) u;
INSERT INTO tasks (user_id, title, description, is_completed, completed_at, created_at)
SELECT 'u' || u, 'Task ' || t || ' of user ' || u || ': ' || md5(u || '/' || t),
       CASE WHEN t % 3 = 0 THEN 'Details ' || md5(t || '/' || u) END,
       t % 4 = 0, CASE WHEN t % 4 = 0 THEN now() END,
       timestamptz '2026-01-01' + t * interval '1 minute'
FROM generate_series(1, 50) u, generate_series(1, 2000) t;
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


# The types of the arguments, for the literals of EXPLAIN EXECUTE.
SQL_TYPES = {
    str: "text", int: "bigint", bool: "boolean", list: "text[]", datetime: "timestamptz",
    UUID: "uuid",
}  # fmt: skip


async def _plan(url: str, query: str, *args: object) -> str:
    """The plan the app's connections run: the generic one (app/db.py)."""
    async with connect(url) as connection:
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE planned AS {query}")
        literals = [
            await connection.fetchval(f"SELECT quote_literal($1::{SQL_TYPES[type(arg)]})", arg)
            for arg in args
        ]
        rows = await connection.fetch(f"EXPLAIN EXECUTE planned({', '.join(literals)})")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("shape", [shape for shape in LIST if not shape.searched], ids=str)
async def test_every_list_walks_its_index_without_a_sort(plans_url: str, shape: ListShape) -> None:
    args: list[object] = ["u7", 101]
    if shape.filtered:
        args.append(True)
    if shape.after_cursor:
        args.extend([datetime(2026, 1, 1, 12, tzinfo=UTC), uuid4()])
    plan = await _plan(plans_url, LIST[shape], *args)
    assert "tasks_user_created_id" in plan, plan
    assert "Sort" not in plan, plan
    assert ("Index Scan Backward" in plan) is shape.newest_first, plan


@pytest.mark.parametrize(
    ("filtered", "newest_first"), list(itertools.product((False, True), repeat=2))
)
async def test_a_search_reads_only_its_users_keys_in_the_search_index(
    plans_url: str, filtered: bool, newest_first: bool
) -> None:
    shape = ListShape(filtered, True, True, False, newest_first)
    keys = search_keys("u7", "A3F")
    args: list[object] = ["u7", 101, *([False] if filtered else []), keys, contains("A3F")]
    plan = await _plan(plans_url, LIST[shape], *args)
    assert "Bitmap Index Scan on tasks_search_trigrams" in plan, plan
    # Every key names the owner: only the user's matches are read.
    assert keys == ["u7 a3f"]
    assert "Seq Scan on tasks" not in plan, plan


async def test_counts_read_the_owners_row_and_get_reads_an_index(plans_url: str) -> None:
    plan = await _plan(plans_url, COUNT, "u7")
    assert "on users" in plan, plan
    assert "tasks" not in plan, plan
    plan = await _plan(plans_url, GET, "u7", uuid4())
    assert "Seq Scan on tasks" not in plan, plan
    assert "Index" in plan, plan


async def test_complete_all_reads_no_task(plans_url: str) -> None:
    async with connect(plans_url) as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            rows = await connection.fetch(
                f"EXPLAIN (ANALYZE, COSTS OFF) {SET_ALL_COMPLETION}", "u8", True
            )
            assert await connection.fetchval(SET_ALL_COMPLETION, "u8", False) == 2000
        finally:
            await transaction.rollback()
    plan = "\n".join(row[0] for row in rows)
    assert "Insert on completion_marks" in plan, plan
    assert "tasks" not in plan, plan


async def test_clear_completed_reads_no_task_when_the_counts_say_none(plans_url: str) -> None:
    """Deleting the completed tasks of a user with none is decided by the owner's row alone."""
    async with connect(plans_url) as connection:
        await connection.execute("UPDATE users SET completed_count = 0 WHERE id = 'u8'")
        rows = await connection.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {DELETE_ALL}", "u8", True)
        await connection.execute("UPDATE users SET completed_count = 500 WHERE id = 'u8'")
    plan = "\n".join(row[0] for row in rows)
    assert "One-Time Filter" in plan, plan
    scans = [line for line in plan.splitlines() if "Scan on tasks" in line]
    assert scans, plan
    assert all("never executed" in line for line in scans), plan


async def test_the_search_index_has_no_pending_list(plans_url: str) -> None:
    """A pending list would be scanned whole by every search, and appended to by every write."""
    async with connect(plans_url) as connection:
        options = await connection.fetchval(
            "SELECT reloptions FROM pg_class WHERE relname = 'tasks_search_trigrams'"
        )
    assert options == ["fastupdate=off"]
