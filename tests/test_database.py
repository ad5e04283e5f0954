"""Bounded waits on the database, and the statement modes for direct and pooled connections."""

import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db.database import behind_transaction_pooler, open_database, server_settings
from app.db.sql import Statement
from app.problems import DatabaseUnavailable
from tests.conftest import create_task, serving

NEON_POOLER = "postgresql://u:p@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb"
NEON_DIRECT = "postgresql://u:p@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb"


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, migrate_on_start=False, **values)  # type: ignore[arg-type]


async def test_every_connection_has_the_timeouts_and_generic_plans(database_url: str) -> None:
    database = await open_database(_settings(), database_url)
    try:
        assert (
            await database.fetchval(Statement("SELECT current_setting('statement_timeout')"))
            == "5s"
        )
        assert await database.fetchval(Statement("SELECT current_setting('lock_timeout')")) == "2s"
        assert await database.fetchval(Statement("SELECT current_setting('plan_cache_mode')")) == (
            "force_generic_plan"
        )
        assert await database.fetchval(Statement("SELECT current_setting('TimeZone')")) == "UTC"
    finally:
        await database.close()


async def test_a_statement_over_its_timeout_is_503_and_the_connection_stays(
    database_url: str,
) -> None:
    database = await open_database(
        _settings(db_statement_timeout=0.2, db_pool_size=1), database_url
    )
    backend = Statement("SELECT pg_backend_pid()")
    try:
        before = await database.fetchval(backend)
        with pytest.raises(DatabaseUnavailable) as raised:
            await database.fetchval(Statement("SELECT pg_sleep(3)"))
        # PostgreSQL cancelled it, well before the client-side bound.
        assert type(raised.value.__cause__).__name__ == "QueryCanceledError"
        assert await database.fetchval(backend) == before  # the pool's one connection, kept
    finally:
        await database.close()


def test_a_neon_pooler_host_is_a_transaction_pooler() -> None:
    assert behind_transaction_pooler(_settings(), make_url(NEON_POOLER))
    assert not behind_transaction_pooler(_settings(), make_url(NEON_DIRECT))
    assert not behind_transaction_pooler(_settings(), make_url("postgresql://u@localhost/db"))
    declared = _settings(db_transaction_pooler=True)
    assert behind_transaction_pooler(declared, make_url("postgresql://u@localhost/db"))
    # Behind a pooler only the time zone travels with the connection; PgBouncer refuses the rest.
    assert server_settings(_settings(), pooled=True) == {"timezone": "UTC"}
    assert server_settings(_settings(), pooled=False) == {
        "timezone": "UTC",
        "statement_timeout": "5000",
        "lock_timeout": "2000",
        "plan_cache_mode": "force_generic_plan",
    }


async def test_a_pooler_host_gets_unnamed_statements(database_url: str) -> None:
    pooled = await open_database(_settings(db_transaction_pooler=True), database_url)
    direct = await open_database(_settings(), database_url)
    overridden = await open_database(
        _settings(db_transaction_pooler=True, db_statement_cache=True), database_url
    )
    try:
        assert (pooled.named, direct.named, overridden.named) == (False, True, True)
    finally:
        for database in (pooled, direct, overridden):
            await database.close()


@pytest.mark.parametrize("statement_cache", [True, False])
async def test_operations_in_either_statement_mode(
    database_url: str, statement_cache: bool
) -> None:
    async with serving(database_url, _settings(db_statement_cache=statement_cache)) as client:
        task = await create_task(client, "modes")
        url = f"/users/modes/tasks/{task['id']}"
        for _ in range(2):  # prepared the first time, reused the second
            patched = await client.patch(url, json={"title": "t"})
            assert patched.status_code == 200
            assert (await client.get(url)).json() == patched.json()
            assert (await client.get("/users/modes/tasks")).status_code == 200
        assert (await client.delete(url)).status_code == 204
