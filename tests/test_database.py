"""Bounded waits on the database, and both statement modes."""

import pytest

from app.config import Settings
from app.db import open_database
from app.problems import DatabaseUnavailable
from tests.conftest import create_task, serving


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def test_every_connection_has_the_statement_and_lock_timeouts(database_url: str) -> None:
    database = await open_database(_settings(), database_url)
    try:
        assert await database.fetchval("SELECT current_setting('statement_timeout')") == "5s"
        assert await database.fetchval("SELECT current_setting('lock_timeout')") == "2s"
        assert await database.fetchval("SELECT current_setting('TimeZone')") == "UTC"
    finally:
        await database.close()


async def test_a_statement_over_its_timeout_is_503_and_the_connection_stays(
    database_url: str,
) -> None:
    database = await open_database(
        _settings(db_statement_timeout=0.2, db_pool_size=1), database_url
    )
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            await database.fetchval("SELECT pg_sleep(3)")
        # PostgreSQL cancelled it, well before the client-side bound.
        assert type(raised.value.__cause__).__name__ == "QueryCanceledError"
        assert await database.fetchval("SELECT pg_backend_pid()") == await database.fetchval(
            "SELECT pg_backend_pid()"
        )
    finally:
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
