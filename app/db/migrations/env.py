"""Alembic environment: runs the migrations over asyncpg, with the app's own URL handling.

They work through a transaction-mode pooler too: all of them run in one transaction, and statement
names are unique, so no name meets another client's on a shared server connection.
"""

import asyncio
from uuid import uuid4

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import app.db.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.config import asyncpg_url, get_settings

target_metadata = SQLModel.metadata
# Every process that starts migrates; this lock makes them take turns.
MIGRATION_LOCK = 7_318_403_926_551_208_001


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        lock_ms = str(round(context.config.attributes.get("lock_timeout", 10.0) * 1000))
        connection.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": lock_ms})
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _run_online() -> None:
    attributes = context.config.attributes
    settings = get_settings()
    database_url = (
        attributes.get("database_url") or settings.migration_database_url or settings.database_url
    )
    if not database_url:
        raise RuntimeError("DATABASE_URL is not set")
    url, connect_args = asyncpg_url(database_url)
    connect_args |= {
        "timeout": attributes.get("connect_timeout", settings.db_connect_timeout),
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__migration_{uuid4().hex}__",
    }
    engine = create_async_engine(url, connect_args=connect_args, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_run_online())
