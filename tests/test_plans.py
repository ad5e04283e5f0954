"""Query plans at scale: every list walks its index without a sort, a search finds one user's
matches through the trigram index, counts read an index. On a database of its own holding 100
users with 2,000 tasks each, planned as PostgreSQL plans them (no planner settings changed)."""

import asyncio
import itertools
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from app.migrate import upgrade
from app.tasks import COUNT, GET, LIST, ListShape, _contains
from tests.databases import connect, recreate_database

LOAD = """
INSERT INTO users (id, task_count) SELECT 'u' || u, 2000 FROM generate_series(1, 50) u;
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


async def _plan(url: str, query: str, *args: object) -> str:
    async with connect(url) as connection:
        rows = await connection.fetch(f"EXPLAIN {query}", *args)
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
async def test_a_search_reads_the_trigram_index_for_one_users_matches(
    plans_url: str, filtered: bool, newest_first: bool
) -> None:
    shape = ListShape(filtered, True, False, newest_first)
    args: list[object] = ["u7", 101, *([False] if filtered else []), _contains("A3F")]
    plan = await _plan(plans_url, LIST[shape], *args)
    assert "Bitmap Index Scan on tasks_search" in plan, plan
    # The owner is a key of the same index: only the user's matches are read.
    conditions = [line for line in plan.splitlines() if "Index Cond" in line and "~~*" in line]
    assert conditions, plan
    assert all("user_id" in line for line in conditions), plan
    assert "Seq Scan" not in plan, plan


async def test_counts_and_get_read_an_index(plans_url: str) -> None:
    for query, args in ((COUNT, ("u7",)), (GET, ("u7", uuid4()))):
        plan = await _plan(plans_url, query, *args)
        assert "Seq Scan" not in plan, plan
        assert "Index" in plan, plan
