"""The service through a real PgBouncer in transaction mode (Neon's -pooler endpoint is one): every
operation and a concurrent mixed load with zero errors, however DB_TRANSACTION_POOLER is set."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.client import Answer, Outcomes, call, clients
from tests.faults.conftest import service
from tests.support.databases import connect
from tests.support.throwaway import Postgres, pgbouncer, pgbouncer_binary
from tests.support.tools import tool_missing


@pytest.fixture(scope="module")
def pooler(server: Postgres) -> Iterator[str]:
    if pgbouncer_binary() is None:
        tool_missing("pgbouncer is not installed here (make test-faults installs Debian's package)")
    with pgbouncer(server, users=("postgres", "pooled")) as base:
        yield base


def _through(pooler: str, database: str) -> str:
    return f"{pooler}/{database.rsplit('/', 1)[1]}"


async def _every_operation(port: int) -> None:
    created = await call(
        port, "POST", "/users/alice/tasks", {"title": "pooled", "description": "d"}
    )
    assert created.status == 201, created
    task = created.json()
    url = f"/users/alice/tasks/{task['id']}"
    expected = [
        (("GET", url, None), 200),
        (("GET", "/users/alice/tasks?limit=1", None), 200),
        (("GET", "/users/alice/tasks?completed=false", None), 200),
        (("PUT", url, {"title": "replaced"}), 200),
        (("PATCH", url, {"description": None}), 200),
        (("PATCH", url + "/complete", None), 200),
        (("GET", "/ready", None), 200),
        (("DELETE", url, None), 204),
        (("GET", url, None), 404),
        (("DELETE", url, None), 404),
    ]
    for (method, path, body), status in expected:
        answer = await call(port, method, path, body)
        assert answer.status == status, (method, path, answer)


async def _mixed_load(port: int, seconds: float) -> Outcomes:
    tasks = [
        (await call(port, "POST", f"/users/mixed-{n}/tasks", {"title": "t"})).json()
        for n in range(20)
    ]
    stop = asyncio.Event()

    async def mixed(number: int) -> Answer:
        task = tasks[number % len(tasks)]
        url = f"/users/{task['user_id']}/tasks/{task['id']}"
        step = (number + int(asyncio.get_running_loop().time() * 1000)) % 10
        if step < 5:
            return await call(port, "GET", url)
        if step < 7:
            return await call(port, "GET", f"/users/{task['user_id']}/tasks?limit=10")
        if step < 8:
            return await call(port, "POST", f"/users/{task['user_id']}/tasks", {"title": "n"})
        if step < 9:
            return await call(port, "PATCH", url, {"title": f"r{number}"})
        return await call(port, "PATCH", url + "/complete")

    load = asyncio.create_task(clients(30, mixed, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await load


def _assert_no_errors(outcomes: Outcomes) -> None:
    assert len(outcomes.answers) > 100
    assert outcomes.statuses() <= {200, 201}, sorted(
        {(a.status, a.body[:120]) for a in outcomes.answers if a.status >= 300}
    )
    assert outcomes.refused == 0
    assert outcomes.unanswered == []


async def test_through_the_pooler_as_configured(
    server: Postgres, pooler: str, database: str, tmp_path: Path
) -> None:
    """As on Neon: traffic through the pooler, migrations over the direct URL."""
    env = {"DB_TRANSACTION_POOLER": "true", "MIGRATION_DATABASE_URL": database}
    with service(_through(pooler, database), tmp_path, **env) as running:
        await _every_operation(running.port)
        _assert_no_errors(await _mixed_load(running.port, 5))
        # The role sets no timeouts, and the pooler cannot carry them: the service says so.
        assert len(running.log_lines("the server's timeouts come from the role")) == 1
        assert running.log_lines("ERROR") == []


async def test_through_the_pooler_undeclared(
    server: Postgres, pooler: str, database: str, tmp_path: Path
) -> None:
    """Nothing says there is a pooler (a misconfiguration): the pooler refuses the connection
    settings, the service finds out before it sends any statement, says so once, connects as the
    pooler allows (unnamed statements included), and no request fails. Two workers migrate
    through the pooler."""
    with service(_through(pooler, database), tmp_path, WORKERS="2") as running:
        await _every_operation(running.port)
        _assert_no_errors(await _mixed_load(running.port, 5))
        refused = running.log_lines("the server refused the connection settings")
        # One line per worker process.
        assert 1 <= len(refused) <= 2
        assert all("with unnamed statements" in line for line in refused)
        assert running.log_lines("prepared statements do not survive") == []
        assert running.log_lines("database unavailable") == []
    async with connect(database) as connection:
        assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 1


async def test_named_statements_through_a_pooler_without_them(
    server: Postgres, pooler: str, database: str, tmp_path: Path
) -> None:
    """DB_STATEMENT_CACHE=true through a pooler that cannot keep prepared statements: the first
    statement that reaches another server connection than its own is lost, the service says so
    once and goes on with unnamed statements, and no request fails."""
    env = {"DB_STATEMENT_CACHE": "true", "MIGRATION_DATABASE_URL": database}
    with service(_through(pooler, database), tmp_path, **env) as running:
        await _every_operation(running.port)
        _assert_no_errors(await _mixed_load(running.port, 5))
        assert len(running.log_lines("the server refused the connection settings")) == 1
        assert len(running.log_lines("prepared statements do not survive")) == 1
        assert running.log_lines("database unavailable") == []


async def test_role_timeouts_bound_a_table_lock_through_the_pooler(
    server: Postgres, pooler: str, database: str, tmp_path: Path
) -> None:
    """With the timeouts set on the role, as the README says, PostgreSQL cancels the waits behind
    a lock through the pooler too: 503 within the lock timeout, and no warning."""
    async with connect(database) as connection:
        await connection.execute(
            "CREATE ROLE pooled LOGIN; GRANT ALL ON SCHEMA public TO pooled;"
            # The migrations create pg_trgm and btree_gin, trusted extensions: CREATE suffices.
            f" GRANT CREATE ON DATABASE {database.rsplit('/', 1)[1]} TO pooled;"
            " ALTER ROLE pooled SET statement_timeout = 3000;"
            " ALTER ROLE pooled SET lock_timeout = 1000"
        )
    pooled = _through(pooler, database).replace("postgres@", "pooled@")
    env = {"DB_TRANSACTION_POOLER": "true", "DB_LOCK_TIMEOUT": "1", "DB_STATEMENT_TIMEOUT": "3"}
    try:
        with service(pooled, tmp_path, **env) as running:
            task = (await call(running.port, "POST", "/users/a/tasks", {"title": "x"})).json()
            async with connect(database) as holder:
                transaction = holder.transaction()
                await transaction.start()
                await holder.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
                answer = await call(running.port, "GET", f"/users/a/tasks/{task['id']}")
                await transaction.rollback()
            assert answer.status == 503
            assert "lock timeout" in running.log_lines("database unavailable")[0]
            assert answer.elapsed < 1 + 2  # the lock timeout, not the client-side bound (4 s)
            assert running.log_lines("the server's timeouts come from the role") == []
    finally:
        async with connect(database) as connection:
            await connection.execute("DROP OWNED BY pooled; DROP ROLE pooled")
