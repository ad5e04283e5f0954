"""Alembic environment: runs the migrations over asyncpg, with the app's own URL handling."""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import app.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.config import asyncpg_url, get_settings

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    database_url = context.config.attributes.get("database_url") or get_settings().database_url
    if not database_url:
        raise RuntimeError("DATABASE_URL is not set")
    url, connect_args = asyncpg_url(database_url)
    engine = create_async_engine(url, connect_args=connect_args, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_run_online())
