"""The database, opened in the app's lifespan, and the one way statements reach it.

Every operation is a single SQL statement, and so a single transaction of its own: there is no
multi-statement unit of work to hold a connection for, and no BEGIN/COMMIT round trips.

Every wait is bounded: DB_POOL_TIMEOUT for a connection; PostgreSQL's statement_timeout and
lock_timeout for the work; and, for a server that does not answer at all, a client-side bound a
second above the statement timeout, after which the connection is dropped. A request that hits one
of them gets DatabaseUnavailable: 503 with Retry-After.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.engine import URL

from app.config import Settings, asyncpg_url
from app.db.failures import LOST_STATEMENTS, STALE_STATEMENTS, TIMEOUTS, UNAVAILABLE, Outage
from app.db.pool import Connection, Pool, Turns
from app.db.sql import Statement
from app.observability.logs import describe
from app.observability.telemetry import StatementTracer
from app.problems import DatabaseNotReady, DatabaseUnavailable, DomainError

logger = logging.getLogger("app.db.database")

CLIENT_MARGIN = 1.0  # seconds above DB_STATEMENT_TIMEOUT: the server's own cancellation comes first

Execute = Callable[..., Awaitable[Any]]


class TimeInDatabase:
    """The time a request's statements have held a connection, summed as they end."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


# Set for a request by whoever wants its time in the database (the rate limits charge it).
time_in_database: ContextVar[TimeInDatabase | None] = ContextVar("time_in_database", default=None)


def behind_transaction_pooler(settings: Settings, url: URL) -> bool:
    if settings.db_transaction_pooler is not None:
        return settings.db_transaction_pooler
    return (url.host or "").split(".", 1)[0].endswith("-pooler")  # Neon's pooled endpoint


def server_settings(settings: Settings, *, pooled: bool) -> dict[str, str]:
    """Settings sent with each new connection; a transaction-mode pooler refuses all but a few."""
    sent = {"timezone": "UTC"}  # the contract's date-times are UTC; PgBouncer keeps this one
    if not pooled:
        sent["statement_timeout"] = str(round(settings.db_statement_timeout * 1000))
        sent["lock_timeout"] = str(round(settings.db_lock_timeout * 1000))
        # Every statement finds one user's rows through the same index whatever its values: the
        # generic plan is the plan. Planning a search afresh each time took longer than running it.
        sent["plan_cache_mode"] = "force_generic_plan"
    return sent


async def open_database(
    settings: Settings, database_url: str, tracer_provider: TracerProvider | None = None
) -> "Database":
    url, connect_args = asyncpg_url(database_url)
    pooled = behind_transaction_pooler(settings, url)
    connect = {
        **connect_args,
        "timeout": settings.db_connect_timeout,
        "statement_cache_size": 0,  # each connection keeps its statements itself (app/db/pool.py)
        "server_settings": server_settings(settings, pooled=pooled),
    }
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = Pool(dsn, connect, size=settings.db_pool_size, idle_lifetime=settings.db_idle_lifetime)
    tracer = StatementTracer(tracer_provider, url.database or "postgres")
    return Database(pool, settings, pooled=pooled, tracer=tracer)


class Database:
    """Runs one statement on a pooled connection, every wait bounded."""

    def __init__(
        self, pool: Pool, settings: Settings, *, pooled: bool, tracer: StatementTracer
    ) -> None:
        self.pooled = pooled
        # Named statements are parsed once per connection. Behind a transaction-mode pooler a
        # statement may reach another server connection than the one it was prepared on, so each
        # is sent unnamed, parsed and executed in one round trip.
        self._statement_cache = settings.db_statement_cache
        self.named: bool = (
            self._statement_cache if self._statement_cache is not None else not pooled
        )
        self.ready = not settings.migrate_on_start  # set once the migrations are applied
        self._pool = pool
        self._turns = Turns()
        self._acquire_timeout = settings.db_pool_timeout
        self._timeout = settings.db_statement_timeout + CLIENT_MARGIN
        self._outage = Outage()
        self._tracer = tracer

    def pool_usage(self) -> tuple[int, int, int, int]:
        """Connections the pool may open, open, running a statement; requests waiting."""
        return self._pool.size, self._pool.open, self._pool.in_use, self._pool.waiting

    # `turn` names the one row a statement changes, if any: statements on one row take turns.

    async def fetchval(self, statement: Statement, *, turn: Hashable = None, **args: object) -> Any:
        return await self._run(PreparedStatement.fetchval, statement, args, turn)

    async def fetchrow(
        self, statement: Statement, *, turn: Hashable = None, **args: object
    ) -> asyncpg.Record | None:
        record: asyncpg.Record | None = await self._run(
            PreparedStatement.fetchrow, statement, args, turn
        )
        return record

    async def fetch(
        self, statement: Statement, *, turn: Hashable = None, **args: object
    ) -> list[asyncpg.Record]:
        records: list[asyncpg.Record] = await self._run(
            PreparedStatement.fetch, statement, args, turn
        )
        return records

    async def close(self) -> None:
        await self._pool.close()

    async def _run(
        self, execute: Execute, statement: Statement, args: dict[str, object], turn: Hashable
    ) -> Any:
        if not self.ready:
            raise DatabaseNotReady
        query, values = statement.text, statement.args(args)
        connection = await self._acquire(turn)
        started = time.perf_counter()
        try:
            try:
                result = await self._execute(connection, execute, query, values)
            except LOST_STATEMENTS as error:
                self._use_unnamed_statements(error)
                # It failed at Parse or Bind, before it ran: run it once more, unnamed.
                result = await self._execute(connection, execute, query, values)
        except BaseException as error:
            self._put_back(connection, turn, error)
            if isinstance(error, Exception):
                raise self._failed(error) from error
            raise
        finally:
            if (spent := time_in_database.get()) is not None:
                spent.seconds += time.perf_counter() - started
        self._put_back(connection, turn, None)
        if self._outage.since is not None:
            self._outage.maybe_over()
        return result

    async def _execute(
        self, connection: Connection, execute: Execute, query: str, args: tuple[object, ...]
    ) -> Any:
        named = self.named
        with self._tracer.span(query):  # every statement sent, in a transaction or not
            statement = connection.statements[named].get(query)
            if statement is None:
                # A name is the query's digest: whichever client prepared a statement of that
                # name on a shared server connection, it is this very query.
                name = "tasks_" + hashlib.blake2b(query.encode(), digest_size=12).hexdigest()
                statement = await connection.prepare(
                    query, name=name if named else None, timeout=self._timeout
                )
                connection.statements[named][query] = statement
            return await execute(statement, *args, timeout=self._timeout)

    async def _acquire(self, turn: Hashable) -> Connection:
        if turn is None and self._pool.idle_at_once():
            return await self._pool.acquire()  # nothing to wait for, and so nothing to bound
        try:
            # One bound for the whole wait: the row's turn, a free slot, a new connection.
            async with asyncio.timeout(self._acquire_timeout):
                if turn is not None:
                    await self._turns.take(turn)  # the row's turn first: waiting holds nothing
                try:
                    return await self._connection()
                except BaseException:
                    if turn is not None:
                        self._turns.give_back(turn)
                    raise
        except TimeoutError as error:
            waited = f"{self._acquire_timeout:g} s"
            self._outage.failed(f"no connection within DB_POOL_TIMEOUT ({waited})", timeout=True)
            raise DatabaseUnavailable from error
        except Exception as error:  # refused, unreachable, wrong password: no database to use
            self._outage.failed(describe(error), timeout=False)
            raise DatabaseUnavailable from error

    async def _connection(self) -> Connection:
        timeouts_sent = not self.pooled
        try:
            return await self._pool.acquire()
        except asyncpg.ProtocolViolationError as error:
            if not timeouts_sent or "startup parameter" not in str(error):
                raise
            self._connect_without_server_settings(error)
            return await self._pool.acquire()

    def _put_back(
        self, connection: Connection, turn: Hashable, error: BaseException | None
    ) -> None:
        """Return a connection after its work, unless that work left it unusable: a timeout or a
        cancellation leaves it mid-statement, and a schema change leaves its statements stale."""
        clean = isinstance(error, asyncpg.PostgresError | DomainError | None)
        if not clean or isinstance(error, STALE_STATEMENTS):
            self._pool.retire(connection)
        self._release(connection, turn)

    def _release(self, connection: Connection, turn: Hashable) -> None:
        self._pool.release(connection)
        if turn is not None:
            self._turns.give_back(turn)

    def _failed(self, error: Exception) -> Exception:
        """The error to raise for a failed statement, noting the failure of the database."""
        if isinstance(error, UNAVAILABLE + LOST_STATEMENTS + STALE_STATEMENTS):
            reason = describe(error)
            if isinstance(error, TimeoutError):
                reason = f"no answer within {self._timeout:g} s"
            self._outage.failed(reason, timeout=isinstance(error, TIMEOUTS))
            return DatabaseUnavailable()
        return error

    def _use_unnamed_statements(self, error: Exception) -> None:
        if self.named:
            self.named = False
            logger.error(
                "prepared statements do not survive between statements (%s): DATABASE_URL leads "
                "through a transaction-mode pooler without prepared-statement support. Switched "
                "to unnamed statements; set DB_TRANSACTION_POOLER=true to start that way.",
                describe(error),
            )

    def _connect_without_server_settings(self, error: Exception) -> None:
        """A pooler that refuses startup parameters is in front: connect as it allows, and send
        statements unnamed (unless DB_STATEMENT_CACHE says otherwise), as when it is declared."""
        if self.pooled:
            return
        self.pooled = True
        self._pool.connect["server_settings"] = {"timezone": "UTC"}
        self.named = bool(self._statement_cache)
        logger.error(
            "the server refused the connection settings (%s): DATABASE_URL leads through a "
            "transaction-mode pooler. Connecting without them%s; set DB_TRANSACTION_POOLER=true "
            "to start that way, and set the timeouts on the role (see README, Operations).",
            describe(error),
            "" if self.named else ", with unnamed statements",
        )

    async def server_bounds(self) -> tuple[str, int, int]:
        """The role, and the statement and lock timeouts in force on a connection, in ms."""
        record = await self.fetchrow(SERVER_BOUNDS)
        assert record is not None
        return record["role"], record["statement_ms"], record["lock_ms"]


SERVER_BOUNDS = Statement("""
SELECT current_user::text AS role,
    (SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout') AS statement_ms,
    (SELECT setting::int FROM pg_settings WHERE name = 'lock_timeout') AS lock_ms""")
