"""The database stopped, or frozen, under load: 503s with Retry-After within the bounds, recovery
without a restart, and every acknowledged write still there."""

import asyncio
import re
import time
from pathlib import Path

from tests.faults.client import Answer, call, clients
from tests.faults.conftest import Service, service
from tests.support.databases import connect
from tests.support.throwaway import Postgres

SLACK = 5.0  # seconds, for a loaded 2-core machine


def _assert_unavailable(answer: Answer) -> None:
    assert answer.status == 503, answer
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"].isdigit()
    assert answer.json()["status"] == 503


async def _writes_through_an_outage(
    server: Postgres, running: Service
) -> tuple[list[Answer], list[Answer], float]:
    """Twenty clients create tasks while the server is stopped for 4 s, then started again, until
    the service logs that the database is back; returns their answers, the answers to /ready
    meanwhile, and when the server stopped."""
    port = running.port
    stop = asyncio.Event()
    probes = []

    async def create(number: int) -> Answer:
        return await call(port, "POST", f"/users/writer-{number}/tasks", {"title": "kept"})

    load = asyncio.create_task(clients(20, create, stop))
    await asyncio.sleep(2)
    server.stop()
    stopped_at = time.monotonic()
    await asyncio.sleep(1)
    assert (await call(port, "GET", "/health")).status == 200
    probes.append(await call(port, "GET", "/ready"))
    _assert_unavailable(probes[-1])
    await asyncio.sleep(3)
    server.start()
    deadline = time.monotonic() + 30
    while probes[-1].status != 200:
        assert time.monotonic() < deadline, "no recovery within 30 s of the restart"
        await asyncio.sleep(0.2)
        probes.append(await call(port, "GET", "/ready"))
    while not running.log_lines("database available again"):
        assert time.monotonic() < deadline, "no recovery line within 30 s of the restart"
        await asyncio.sleep(0.2)
    stop.set()
    outcomes = await load
    assert outcomes.refused == 0
    assert outcomes.unanswered == []
    return outcomes.answers, probes, stopped_at


async def test_database_stopped_under_writes(
    server: Postgres, database: str, tmp_path: Path
) -> None:
    with service(database, tmp_path, DB_POOL_TIMEOUT="2", DB_CONNECT_TIMEOUT="2") as running:
        answers, probes, stopped_at = await _writes_through_an_outage(server, running)
        log = running.log_lines("app.db.failures")

    created = [answer for answer in answers if answer.status == 201]
    failed = [answer for answer in answers if answer.status != 201]
    assert created
    assert failed
    for answer in failed:
        _assert_unavailable(answer)
        # Bounded: the pool timeout, or the statement's own bound, plus slack.
        assert answer.elapsed < 2 + 2 + SLACK
    assert any(answer.started > stopped_at + 5 and answer.status == 201 for answer in answers)

    async with connect(database) as connection:
        stored = {str(row[0]) for row in await connection.fetch("SELECT id FROM tasks")}
    acknowledged = {answer.json()["id"] for answer in created}
    assert acknowledged <= stored

    # One line when it went, one when it came back, with the count of failed requests.
    went = [line for line in log if "database unavailable" in line]
    back = [line for line in log if "database available again" in line]
    assert len(went) == 1, log
    assert len(back) == 1, log
    assert re.search(r"request_id=[0-9a-f]{32} ", went[0])
    count = re.search(r"requests failed for [0-9.]+ s, (\d+) of them", back[0])
    assert count is not None
    failed_probes = [probe for probe in probes if probe.status == 503]
    assert int(count.group(1)) == len(failed) + len(failed_probes)


async def test_frozen_database_is_503_within_the_client_bound(
    server: Postgres, database: str, tmp_path: Path
) -> None:
    """A server that stops answering (SIGSTOP, as behind a network partition) cancels nothing
    itself: each request still answers within the pool timeout plus the client-side bound."""
    settings = {
        "DB_STATEMENT_TIMEOUT": "1",  # the client-side bound is 2 s
        "DB_POOL_TIMEOUT": "2",
        "DB_POOL_SIZE": "5",
        "DB_CONNECT_TIMEOUT": "2",
    }
    with service(database, tmp_path, **settings) as running:
        port = running.port
        task = (await call(port, "POST", "/users/alice/tasks", {"title": "frozen"})).json()
        warm = [call(port, "GET", f"/users/alice/tasks/{task['id']}") for _ in range(10)]
        assert {answer.status for answer in await asyncio.gather(*warm)} == {200}

        server.freeze()
        try:
            requests = [
                call(port, "GET", f"/users/alice/tasks/{task['id']}") for _ in range(15)
            ] + [
                call(port, "PATCH", f"/users/alice/tasks/{task['id']}", {"title": "x"})
                for _ in range(15)
            ]
            answers = await asyncio.gather(*requests)
        finally:
            server.thaw()
        for answer in answers:
            _assert_unavailable(answer)
            assert answer.elapsed < 2 + 2 + SLACK, answer.elapsed

        deadline = time.monotonic() + 30
        while (await call(port, "GET", f"/users/alice/tasks/{task['id']}")).status != 200:
            assert time.monotonic() < deadline, "no recovery within 30 s of thawing"
            await asyncio.sleep(0.2)
        assert (await call(port, "GET", "/ready")).status == 200
