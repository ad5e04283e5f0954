"""SIGTERM under load: what is in flight completes, nothing acknowledged is lost, no connection the
service accepted goes unanswered, and the process exits 0 within SHUTDOWN_GRACE."""

import asyncio
import signal
import time
from pathlib import Path

import pytest

from app.db.migrate import upgrade
from tests.faults.client import Answer, call, clients
from tests.faults.conftest import service
from tests.support.databases import connect

SLACK = 10.0  # seconds, for a loaded 2-core machine


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_under_load(database: str, tmp_path: Path, workers: int) -> None:
    await asyncio.to_thread(upgrade, database)  # every worker serves at once
    env = {"WORKERS": str(workers), "MIGRATE_ON_START": "false"}
    with service(database, tmp_path, **env) as running:
        stop = asyncio.Event()

        async def create(number: int) -> Answer:
            return await call(running.port, "POST", f"/users/u{number}/tasks", {"title": "t"})

        load = asyncio.create_task(clients(40, create, stop))
        await asyncio.sleep(3)
        terminated_at = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        while running.process.poll() is None:
            assert time.monotonic() - terminated_at < 15 + SLACK, "no exit within the grace"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # every client now finds the port closed
        stop.set()
        outcomes = await load

    assert running.process.returncode == 0
    assert outcomes.unanswered == []  # accepted connections were answered, none reset
    assert outcomes.refused > 0
    assert outcomes.statuses() == {201}
    assert any(answer.started + answer.elapsed > terminated_at for answer in outcomes.answers)
    async with connect(database) as connection:
        stored = {str(row[0]) for row in await connection.fetch("SELECT id FROM tasks")}
    assert {answer.json()["id"] for answer in outcomes.answers} <= stored


async def test_an_idle_connection_is_still_heard_when_the_server_stops(
    database: str, tmp_path: Path
) -> None:
    """A request sent on a kept-alive connection just as the server stops gets its answer."""
    await asyncio.to_thread(upgrade, database)
    with service(database, tmp_path, MIGRATE_ON_START="false") as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request)
        first = await reader.readuntil(b'{"status":"ok"}')
        assert first.startswith(b"HTTP/1.1 200")
        running.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        writer.write(request)
        second = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert second.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in second.lower()
        assert running.process.wait(timeout=30) == 0


async def test_shutdown_cancels_what_outlasts_the_grace(database: str, tmp_path: Path) -> None:
    """Requests stuck behind a lock longer than SHUTDOWN_GRACE are cancelled: each answers 503,
    none of their changes is made, and the process exits 0 soon after the grace."""
    settings = {"SHUTDOWN_GRACE": "3", "DB_LOCK_TIMEOUT": "60", "DB_STATEMENT_TIMEOUT": "60"}
    with service(database, tmp_path, **settings) as running:
        port = running.port
        task = (await call(port, "POST", "/users/alice/tasks", {"title": "before"})).json()
        url = f"/users/alice/tasks/{task['id']}"
        async with connect(database) as holder:
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task["id"])
            stuck = [
                asyncio.create_task(call(port, "PATCH", url, {"title": "during"})) for _ in range(3)
            ]
            await asyncio.sleep(1)
            terminated_at = time.monotonic()
            running.process.send_signal(signal.SIGTERM)
            answers = await asyncio.gather(*stuck)
            exit_code = await asyncio.to_thread(running.process.wait, 30)
            exited_after = time.monotonic() - terminated_at
            await transaction.rollback()
        after = await _title(database, task["id"])

    assert exit_code == 0
    assert exited_after < 3 + SLACK
    for answer in answers:
        assert answer.status == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"].isdigit()
    assert after == "before"
    assert running.log_lines("timeout graceful shutdown exceeded")


async def _title(database: str, task_id: str) -> str:
    async with connect(database) as connection:
        title: str = await connection.fetchval("SELECT title FROM tasks WHERE id = $1", task_id)
        return title
