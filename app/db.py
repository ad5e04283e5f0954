"""The connection pool, built in the app's lifespan.

Every operation is a single SQL statement, and so a single transaction of its own: there is no
multi-statement unit of work to hold a connection for, and no BEGIN/COMMIT round trips.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.config import Settings, asyncpg_url


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    def get_reset_query(self) -> str:
        # Connections are only used for single statements: no session state is ever left behind
        # to reset, so returning one to the pool costs no round trip.
        return ""


async def create_pool(settings: Settings, database_url: str) -> asyncpg.Pool:
    url, connect_args = asyncpg_url(database_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    if not settings.db_statement_cache:
        # For PgBouncer in transaction mode without prepared-statement support.
        connect_args["statement_cache_size"] = 0
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=0,  # start (and answer /health, and 503s) even while the database is down
        max_size=settings.db_pool_size,
        max_inactive_connection_lifetime=settings.db_idle_lifetime,
        timeout=settings.db_connect_timeout,
        connection_class=_Connection,
        server_settings={"timezone": "UTC"},  # the contract's date-times are UTC
        **connect_args,
    )
    return pool


class Database:
    """Runs one statement on a pooled connection, waiting at most DB_POOL_TIMEOUT for one."""

    def __init__(self, pool: asyncpg.Pool, size: int, acquire_timeout: float) -> None:
        self.pool = pool
        # Requests queue here, first come first served: the pool's own queue lets a newcomer
        # take a connection before a request that has waited, which stretches the tail.
        self._slots = asyncio.Semaphore(size)
        self._acquire_timeout = acquire_timeout

    async def _acquire(self) -> asyncpg.Connection:
        # asyncio.timeout, not acquire(timeout=...): that one spawns a task per call.
        async with asyncio.timeout(self._acquire_timeout):
            await self._slots.acquire()
            try:
                return await self.pool.acquire()
            except BaseException:
                self._slots.release()
                raise

    async def _release(self, connection: asyncpg.Connection) -> None:
        try:
            await self.pool.release(connection)
        finally:
            self._slots.release()

    async def fetchval(self, query: str, *args: object) -> object:
        connection = await self._acquire()
        try:
            return await connection.fetchval(query, *args)
        finally:
            await self._release(connection)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        connection = await self._acquire()
        try:
            row: asyncpg.Record | None = await connection.fetchrow(query, *args)
            return row
        finally:
            await self._release(connection)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        connection = await self._acquire()
        try:
            rows: list[asyncpg.Record] = await connection.fetch(query, *args)
            return rows
        finally:
            await self._release(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One explicit transaction, for the operations that need more than one statement."""
        connection = await self._acquire()
        try:
            async with connection.transaction():
                yield connection
        finally:
            await self._release(connection)
