"""Direct connections for the tests, `make fuzz` and `make bench`, beside the app's own pool."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.config import asyncpg_url


def dsn(database_url: str, database: str | None = None) -> str:
    url = asyncpg_url(database_url)[0].set(drivername="postgresql")
    if database:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def connect(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn(database_url), **asyncpg_url(database_url)[1])
    try:
        yield connection
    finally:
        await connection.close()


async def execute(database_url: str, sql: str) -> None:
    async with connect(database_url) as connection:
        await connection.execute(sql)


async def recreate_database(server_url: str, name: str) -> str:
    """An empty database called `name` on the server; returns its URL."""
    async with connect(server_url) as connection:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await connection.execute(f"CREATE DATABASE {name}")
    return dsn(server_url, name)
