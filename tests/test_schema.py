"""The schema is kept twice, as app/db/tables.py (what Alembic compares) and as the migrations
(what databases get): Alembic's own comparison finds no difference between them."""

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import app.db.tables  # noqa: F401  (registers the tables)
from app.config import asyncpg_url


async def test_the_tables_and_the_migrations_describe_one_schema(database_url: str) -> None:
    url, connect_args = asyncpg_url(database_url)
    engine = create_async_engine(url, connect_args=connect_args)

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        found: list[Any] = compare_metadata(context, SQLModel.metadata)
        return found

    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()
