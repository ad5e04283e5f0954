"""The connection pool (app/db/pool.py) on real PostgreSQL: first come first served, connections
opened on demand and closed when idle, a retired connection never handed out again."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.config import asyncpg_url
from app.db.pool import Connection, Pool
from tests.support.databases import dsn


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    opened = Pool(dsn(database_url), dict(asyncpg_url(database_url)[1]), size=2, idle_lifetime=0.3)
    try:
        yield opened
    finally:
        await opened.close()


async def test_connections_are_opened_on_demand(pool: Pool) -> None:
    assert pool.open == 0
    first = await pool.acquire()
    assert (pool.open, pool.in_use) == (1, 1)
    pool.release(first)
    again = await pool.acquire()
    assert again is first  # an idle connection is taken before a new one is opened
    pool.release(again)


async def test_waiting_requests_are_served_in_order(pool: Pool) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    served: list[int] = []

    async def request(number: int) -> None:
        connection = await pool.acquire()
        served.append(number)
        await asyncio.sleep(0)
        pool.release(connection)

    waiting = []
    for number in range(5):
        waiting.append(asyncio.create_task(request(number)))
        await asyncio.sleep(0)  # each one queues before the next arrives
    assert pool.waiting == 5
    for connection in held:
        pool.release(connection)
    await asyncio.gather(*waiting)
    assert served == [0, 1, 2, 3, 4]
    assert pool.waiting == 0


async def test_idle_connections_are_closed(pool: Pool) -> None:
    connection = await pool.acquire()
    pool.release(connection)
    assert pool.open == 1
    for _ in range(100):
        if pool.open == 0:
            break
        await asyncio.sleep(0.1)
    assert pool.open == 0
    assert connection.is_closed()


async def test_a_retired_connection_is_never_handed_out_again(pool: Pool) -> None:
    connection: Connection = await pool.acquire()
    pool.retire(connection)
    pool.release(connection)
    other = await pool.acquire()
    assert other is not connection
    pool.release(other)
    for _ in range(50):
        if connection.is_closed():
            break
        await asyncio.sleep(0.05)
    assert connection.is_closed()


async def test_a_pool_of_an_unreachable_database_starts_and_refuses() -> None:
    unreachable = Pool(
        "postgresql://postgres@127.0.0.1:1/nothing", {"timeout": 2}, size=2, idle_lifetime=60
    )
    try:
        with pytest.raises(ConnectionRefusedError):
            await unreachable.acquire()
        assert (unreachable.open, unreachable.in_use) == (0, 0)
    finally:
        await unreachable.close()
