"""Writes that wait for another writer of the same user: each is seen waiting for its lock in
pg_locks before the other commits, then applies to what the other wrote. The other writer is a
transaction of the test's own, written as another instance of the service would write (the owner's
row first, then the tasks, the counts in the same transaction), so the waiting request's statement
began before that commit. After each race the API, the table and the owner's counts agree."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.conftest import create_task
from tests.support.databases import connect

OWNER = "SELECT FROM users WHERE id = 'alice' FOR NO KEY UPDATE"
COMPLETE_ALL = """
UPDATE tasks SET is_completed = true, completed_at = now(), updated_at = now(),
    version = version + 1
WHERE user_id = 'alice' AND NOT is_completed;
UPDATE users SET completed_count = task_count WHERE id = 'alice';
"""
CREATE = """
UPDATE users SET task_count = task_count + 1 WHERE id = 'alice';
INSERT INTO tasks (user_id, title) VALUES ('alice', 'made elsewhere');
"""


async def _waiting_for_a_lock(connection: Any) -> int:
    """Backends of this database waiting for a lock, as pg_locks shows them."""
    waiting: int = await connection.fetchval(
        """SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid)
           WHERE NOT pg_locks.granted AND pg_stat_activity.datname = current_database()"""
    )
    return waiting


@asynccontextmanager
async def _another_writer(database_url: str, sql: str) -> AsyncIterator[Any]:
    """A transaction that has written `sql` with alice's row locked, and commits when the block
    ends. Yields a spare connection to watch with."""
    async with connect(database_url) as writer, connect(database_url) as watcher:
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute(OWNER)
        await writer.execute(sql)
        try:
            yield watcher
        finally:
            await transaction.commit()


async def _behind(
    database_url: str, sql: str, request: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response:
    """The request, sent while another writer holds alice's row, and seen waiting for it."""
    async with _another_writer(database_url, sql) as watcher:
        pending = asyncio.ensure_future(request())
        for _ in range(200):
            if await _waiting_for_a_lock(watcher):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the request never waited for the other writer")
        assert not pending.done()
    return await pending


async def _agree(client: httpx.AsyncClient, database_url: str) -> list[dict[str, Any]]:
    """The API's tasks and counts are the table's; returns the tasks."""
    listed = (await client.get("/users/alice/tasks")).json()
    counts = (await client.get("/users/alice/tasks/counts")).json()
    async with connect(database_url) as connection:
        rows = await connection.fetch(
            "SELECT id::text, is_completed, version FROM tasks WHERE user_id = 'alice'"
            " ORDER BY created_at, id"
        )
        stored = await connection.fetchrow(
            "SELECT task_count, completed_count FROM users WHERE id = 'alice'"
        )
    assert [(t["id"], t["is_completed"]) for t in listed] == [
        (row["id"], row["is_completed"]) for row in rows
    ]
    completed = sum(row["is_completed"] for row in rows)
    assert counts == {"total": len(rows), "open": len(rows) - completed, "completed": completed}
    assert (stored["task_count"], stored["completed_count"]) == (len(rows), completed)
    return listed  # type: ignore[no-any-return]


async def test_a_toggle_behind_complete_all_applies_to_its_result(
    client: httpx.AsyncClient, database_url: str
) -> None:
    task = await create_task(client)
    url = f"/users/alice/tasks/{task['id']}/complete"
    response = await _behind(database_url, COMPLETE_ALL, lambda: client.patch(url))
    assert response.status_code == 200
    assert response.json()["is_completed"] is False  # completed by the other, then toggled
    assert response.headers["etag"] == '"3"'
    await _agree(client, database_url)


async def test_a_conditional_write_behind_another_writer_sees_its_version(
    client: httpx.AsyncClient, database_url: str
) -> None:
    task = await create_task(client)
    url = f"/users/alice/tasks/{task['id']}"
    request = client.patch(url, json={"title": "mine"}, headers={"If-Match": '"1"'})
    response = await _behind(database_url, COMPLETE_ALL, lambda: request)
    assert response.status_code == 412  # the other writer made it version 2
    listed = await _agree(client, database_url)
    assert listed[0]["title"] == task["title"]


async def test_a_delete_behind_another_writer_counts_what_it_deleted(
    client: httpx.AsyncClient, database_url: str
) -> None:
    task = await create_task(client)
    await create_task(client)
    request = client.delete(f"/users/alice/tasks/{task['id']}")
    response = await _behind(database_url, COMPLETE_ALL, lambda: request)
    assert response.status_code == 204
    listed = await _agree(client, database_url)
    assert [t["is_completed"] for t in listed] == [True]


async def test_clear_completed_behind_complete_all_deletes_what_it_saw(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Its statement began before complete all committed: the tasks it sees are open, and it
    deletes none of them. Either way, what it answers is what it did."""
    for _ in range(3):
        await create_task(client)
    request = client.delete("/users/alice/tasks", params={"completed": "true"})
    response = await _behind(database_url, COMPLETE_ALL, lambda: request)
    assert response.status_code == 200
    listed = await _agree(client, database_url)
    assert response.json() == {"deleted": 3 - len(listed)}


async def test_complete_all_behind_a_create_counts_the_new_task(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """The task created while it waited is not among the tasks its statement sees: it stays open,
    and the owner's counts say so."""
    await create_task(client)
    request = client.patch("/users/alice/tasks", json={"is_completed": True})
    response = await _behind(database_url, CREATE, lambda: request)
    assert response.status_code == 200
    listed = await _agree(client, database_url)
    assert len(listed) == 2
    assert response.json() == {"updated": sum(t["is_completed"] for t in listed)}


async def test_a_create_behind_complete_all_counts_itself(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_task(client)
    request = client.post("/users/alice/tasks", json={"title": "new", "is_completed": True})
    response = await _behind(database_url, COMPLETE_ALL, lambda: request)
    assert response.status_code == 201
    listed = await _agree(client, database_url)
    assert [t["is_completed"] for t in listed] == [True, True]


async def test_creates_of_one_user_wait_for_the_row_one_at_a_time(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Creates take their owner's turn like every other write: behind a lock on the owner's row,
    one waits in the database holding a connection, the others wait holding none, and another
    user's requests are served meanwhile."""
    await create_task(client)
    async with _another_writer(database_url, "SELECT") as watcher:
        creates = [
            asyncio.ensure_future(
                client.post(
                    "/users/alice/tasks",
                    json={"title": f"queued {n}"},
                    headers={"Idempotency-Key": f"key-{n}"} if n % 2 else None,
                )
            )
            for n in range(6)
        ]
        for _ in range(200):
            if await _waiting_for_a_lock(watcher):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # time for every create to reach the database, were it to
        assert await _waiting_for_a_lock(watcher) == 1
        assert (await create_task(client, "bob"))["user_id"] == "bob"
        assert not any(create.done() for create in creates)
    assert [(await create).status_code for create in creates] == [201] * 6
    assert len(await _agree(client, database_url)) == 7
