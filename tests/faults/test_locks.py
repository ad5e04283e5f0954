"""Locks held in the database: the requests behind one wait at most DB_LOCK_TIMEOUT and answer 503,
and nobody else's requests wait with them."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.faults.client import Answer, call, clients
from tests.faults.conftest import service
from tests.support.databases import connect

LOCK_TIMEOUT = 1.0
POOL_TIMEOUT = 2.0
SLACK = 5.0  # seconds, for a loaded 2-core machine
SETTINGS = {
    "DB_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
    "DB_STATEMENT_TIMEOUT": "3",
    "DB_POOL_TIMEOUT": str(POOL_TIMEOUT),
    "DB_POOL_SIZE": "5",
}


@asynccontextmanager
async def holding(database_url: str, statement: str, *args: object) -> AsyncIterator[None]:
    """A transaction of another client that holds the locks `statement` takes until the end."""
    async with connect(database_url) as connection:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(statement, *args)
        try:
            yield
        finally:
            await transaction.rollback()


def _assert_unavailable(answer: Answer) -> None:
    assert answer.status == 503, answer
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"].isdigit()


async def test_a_locked_task_does_not_hold_up_the_others(database: str, tmp_path: Path) -> None:
    with service(database, tmp_path, **SETTINGS) as running:
        port = running.port
        locked = (await call(port, "POST", "/users/alice/tasks", {"title": "locked"})).json()
        others = [
            (await call(port, "POST", f"/users/user-{n}/tasks", {"title": "free"})).json()
            for n in range(5)
        ]
        stop = asyncio.Event()

        async def locked_task(number: int) -> Answer:
            url = f"/users/alice/tasks/{locked['id']}"
            return await call(port, "PATCH", url, {"title": f"try {number}"})

        async def other_task(number: int) -> Answer:
            task = others[number % len(others)]
            url = f"/users/{task['user_id']}/tasks/{task['id']}"
            if number % 2:
                return await call(port, "GET", url)
            return await call(port, "PATCH", url, {"title": f"renamed {number}"})

        select_for_update = "SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE"
        async with holding(database, select_for_update, locked["id"]):
            blocked = asyncio.create_task(clients(10, locked_task, stop))
            served = asyncio.create_task(clients(5, other_task, stop))
            await asyncio.sleep(8)
            stop.set()
            behind_the_lock, elsewhere = await blocked, await served

        assert behind_the_lock.answers
        for answer in behind_the_lock.answers:
            _assert_unavailable(answer)
            assert answer.elapsed < LOCK_TIMEOUT + POOL_TIMEOUT + SLACK
        # Served all along: only 2xx, and many of them.
        assert elsewhere.statuses() == {200}
        assert len(elsewhere.answers) >= 50
        assert max(answer.elapsed for answer in elsewhere.answers) < POOL_TIMEOUT + SLACK
        lock_lines = running.log_lines("database unavailable")
        assert len(lock_lines) == 1
        assert "lock timeout" in lock_lines[0]

        after = await call(port, "PATCH", f"/users/alice/tasks/{locked['id']}", {"title": "mine"})
        assert after.status == 200


async def test_a_locked_table_answers_503_within_the_bounds(database: str, tmp_path: Path) -> None:
    with service(database, tmp_path, **SETTINGS) as running:
        port = running.port
        task = (await call(port, "POST", "/users/alice/tasks", {"title": "x"})).json()
        url = f"/users/alice/tasks/{task['id']}"
        requests = [
            ("GET", url, None),
            ("GET", "/users/alice/tasks", None),
            ("POST", "/users/alice/tasks", {"title": "y"}),
            ("PUT", url, {"title": "z"}),
            ("PATCH", url, {"title": "w"}),
            ("PATCH", url + "/complete", None),
            ("DELETE", url, None),
        ] * 4
        async with holding(database, "LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE"):
            started = time.monotonic()
            answers = await asyncio.gather(*(call(port, *request) for request in requests))
            elapsed = time.monotonic() - started
            assert (await call(port, "GET", "/health")).status == 200

        for answer in answers:
            _assert_unavailable(answer)
        # Four rounds of seven through a pool of five: every wait is one lock timeout, plus the
        # wait for a connection.
        assert elapsed < POOL_TIMEOUT + LOCK_TIMEOUT + SLACK
        assert (await call(port, "GET", url)).status == 200
