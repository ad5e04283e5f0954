"""The engine, built in the app's lifespan, and the request's transaction."""

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import uuid4

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import Settings, asyncpg_url


def create_engine(settings: Settings, database_url: str) -> AsyncEngine:
    url, connect_args = asyncpg_url(database_url)
    connect_args["timeout"] = settings.db_connect_timeout
    if not settings.db_statement_cache:
        # For PgBouncer in transaction mode without prepared-statement support.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid4()}__"
    return create_async_engine(
        url,
        connect_args=connect_args,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        pool_pre_ping=True,
    )


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One request, one transaction: committed when the handler returns, rolled back on error."""
    engine: AsyncEngine = request.state.engine
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
