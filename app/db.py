"""The database, opened in the app's lifespan, and the one way statements reach it.

Every operation is a single SQL statement, and so a single transaction of its own: there is no
multi-statement unit of work to hold a connection for, and no BEGIN/COMMIT round trips. Statements
run on asyncpg's pool, with its per-connection statement cache; requests wait for a connection in
a first-come, first-served queue in front of it (asyncpg's own lets a newcomer take a freed
connection ahead of the requests already waiting).

Every wait is bounded: DB_POOL_TIMEOUT for a connection; PostgreSQL's statement_timeout and
lock_timeout for the work; and, for a server that does not answer at all, a client-side bound a
second above the statement timeout, after which the connection is dropped. A request that hits one
of them gets DatabaseUnavailable: 503 with Retry-After.
"""

import asyncio
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import asyncpg
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.engine import URL

from app.config import Settings, asyncpg_url
from app.logs import describe
from app.metrics import DATABASE_ERRORS
from app.problems import DatabaseNotReady, DatabaseUnavailable, DomainError
from app.sql import Statement
from app.telemetry import StatementTracer

logger = logging.getLogger("app.db")

CLIENT_MARGIN = 1.0  # seconds above DB_STATEMENT_TIMEOUT: the server's own cancellation comes first
# Seconds without a failure before an outage counts as over: lock timeouts on one hot row, a
# second or two apart, make one episode, not a pair of log lines each.
QUIET_PERIOD = 5.0

# Failures of the database's availability, not of the request: the client may retry.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,  # 08: no connection, or a refused one
    asyncpg.OperatorInterventionError,  # 57: statement timeout, cancelled, shutting down, starting
    asyncpg.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.LockNotAvailableError,  # 55P03: lock timeout
    asyncpg.TransactionRollbackError,  # 40: serialization failure, deadlock
)
# Failures that are a bound reached rather than a connection refused or lost.
TIMEOUTS = (TimeoutError, asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)
# What a transaction-mode pooler without prepared-statement support makes of named statements.
LOST_STATEMENTS = (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError)
# A statement prepared before a schema change.
STALE_STATEMENTS = (asyncpg.InvalidCachedStatementError, asyncpg.OutdatedSchemaCacheError)
CLOSE_TIMEOUT = 2.0  # seconds a connection left mid-statement waits for its cancellation


class _Outage:
    """One log line when statements start failing for want of the database, one when they have
    stopped failing (with the count of failed requests): not a line per request."""

    def __init__(self) -> None:
        self.since: float | None = None
        self._failures = 0
        self._last_failure = 0.0

    def failed(self, reason: str, *, timeout: bool) -> None:
        DATABASE_ERRORS.labels("timeout" if timeout else "unavailable").inc()
        logger.debug("database request failed: %s", reason)
        self._failures += 1
        self._last_failure = time.monotonic()
        if self.since is None:
            self.since = self._last_failure
            logger.warning("database unavailable: %s", reason)

    def maybe_over(self) -> None:
        """After a statement succeeded: the outage is over once none failed for QUIET_PERIOD."""
        now = time.monotonic()
        if self.since is None or now - self._last_failure < QUIET_PERIOD:
            return
        logger.warning(
            "database available again; requests failed for %.1f s, %d of them",
            self._last_failure - self.since,
            self._failures,
        )
        self.since = None
        self._failures = 0


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


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: nothing. Every statement is a
    transaction of its own and none changes the session, so asyncpg's reset query (a round trip
    on every release) has nothing to reset."""


async def open_database(
    settings: Settings, database_url: str, tracer_provider: TracerProvider | None = None
) -> "Database":
    url, connect_args = asyncpg_url(database_url)
    pooled = behind_transaction_pooler(settings, url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = ConnectOptions(dsn, {**connect_args, "timeout": settings.db_connect_timeout})
    named = settings.db_statement_cache
    connection.settings(
        server_settings(settings, pooled=pooled), named=not pooled if named is None else named
    )
    pool = await asyncpg.create_pool(
        dsn,
        min_size=0,  # opened on demand: the service starts while the database is down
        max_size=settings.db_pool_size,
        max_inactive_connection_lifetime=settings.db_idle_lifetime,
        reset=_keep_session,
        **connection.arguments,
    )
    tracer = StatementTracer(tracer_provider, url.database or "postgres")
    return Database(pool, connection, settings, pooled=pooled, tracer=tracer)


@dataclass
class ConnectOptions:
    """How the pool connects: asyncpg.connect's arguments, changed when a pooler turns out to be
    in front of the database."""

    dsn: str
    arguments: dict[str, Any]

    def settings(self, sent: dict[str, str], *, named: bool) -> None:
        # Named statements are parsed once per connection. Behind a transaction-mode pooler a
        # statement may reach another server connection than the one it was prepared on: there
        # each is sent unnamed, parsed and executed on every call.
        self.arguments["server_settings"] = sent
        self.arguments["statement_cache_size"] = 100 if named else 0
        self.arguments["max_cached_statement_lifetime"] = 0  # the statements never change

    @property
    def named(self) -> bool:
        return bool(self.arguments["statement_cache_size"])


class Database:
    """Runs one statement on a pooled connection, every wait bounded."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: ConnectOptions,
        settings: Settings,
        *,
        pooled: bool,
        tracer: StatementTracer,
    ) -> None:
        self.pooled = pooled
        self.ready = not settings.migrate_on_start  # set once the migrations are applied
        self._pool = pool
        self._connection = connection
        self._size = settings.db_pool_size
        # Requests queue here for a connection, first come first served (asyncio.Semaphore wakes
        # its waiters in order); asyncpg's pool behind it always has one for a slot's holder.
        self._slots = asyncio.Semaphore(settings.db_pool_size)
        self._waiting = 0
        self._turns = Turns()
        self._statement_cache = settings.db_statement_cache
        self._acquire_timeout = settings.db_pool_timeout
        self._timeout = settings.db_statement_timeout + CLIENT_MARGIN
        self._outage = _Outage()
        self._tracer = tracer
        self._releasing: set[asyncio.Task[None]] = set()

    @property
    def named(self) -> bool:
        """Whether statements are prepared once per connection (named), or on every call."""
        return self._connection.named

    def pool_usage(self) -> tuple[int, int, int, int]:
        """Connections the pool may open, open, running a statement; requests waiting."""
        size, idle = self._pool.get_size(), self._pool.get_idle_size()
        return self._size, size, size - idle, self._waiting

    # `turn` names the one row a statement changes, if any: statements on one row take turns.

    async def fetchval(self, statement: Statement, *, turn: Hashable = None, **args: object) -> Any:
        return await self._run("fetchval", statement, args, turn)

    async def fetchrow(
        self, statement: Statement, *, turn: Hashable = None, **args: object
    ) -> asyncpg.Record | None:
        record: asyncpg.Record | None = await self._run("fetchrow", statement, args, turn)
        return record

    async def fetch(
        self, statement: Statement, *, turn: Hashable = None, **args: object
    ) -> list[asyncpg.Record]:
        records: list[asyncpg.Record] = await self._run("fetch", statement, args, turn)
        return records

    async def close(self) -> None:
        await asyncio.gather(*self._releasing)
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except Exception:  # unreachable, or it did not answer in time
            self._pool.terminate()

    async def _run(
        self, method: str, statement: Statement, args: dict[str, object], turn: Hashable
    ) -> Any:
        if not self.ready:
            raise DatabaseNotReady
        values = statement.args(args)
        connection = await self._acquire(turn)
        try:
            try:
                result = await self._execute(connection, method, statement, values)
            except LOST_STATEMENTS as error:
                # It failed at Parse or Bind, before it ran: run it once more, unnamed, on a
                # connection made so (the one it failed on closes as it goes back).
                await self._use_unnamed_statements(error)
                await self._pool.release(connection)
                connection = await self._pool.acquire()
                result = await self._execute(connection, method, statement, values)
        except BaseException as error:
            await self._put_back(connection, turn, error)
            if isinstance(error, Exception):
                raise self._failed(error) from error
            raise
        await self._put_back(connection, turn, None)
        if self._outage.since is not None:
            self._outage.maybe_over()
        return result

    async def _execute(
        self, connection: Any, method: str, statement: Statement, values: tuple[object, ...]
    ) -> Any:
        with self._tracer.span(statement.text):  # every statement sent
            return await getattr(connection, method)(statement.text, *values, timeout=self._timeout)

    async def _acquire(self, turn: Hashable) -> Any:
        if turn is None and not self._slots.locked() and self._pool.get_idle_size():
            await self._slots.acquire()  # nothing to wait for, and so nothing to bound
            return await self._pool.acquire()
        try:
            # One bound for the whole wait: the row's turn, a free slot, a new connection.
            async with asyncio.timeout(self._acquire_timeout):
                if turn is not None:
                    await self._turns.take(turn)  # the row's turn first: waiting holds nothing
                try:
                    await self._take_slot()
                    try:
                        return await self._connect()
                    except BaseException:
                        self._slots.release()
                        raise
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

    async def _take_slot(self) -> None:
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1

    async def _connect(self) -> Any:
        try:
            return await self._pool.acquire()
        except asyncpg.ProtocolViolationError as error:
            if self.pooled or "startup parameter" not in str(error):
                raise
            await self._connect_as_a_pooler_allows(error)
            return await self._pool.acquire()

    async def _put_back(self, connection: Any, turn: Hashable, error: BaseException | None) -> None:
        """Return a connection after its work. A timeout or a cancellation leaves it mid-statement:
        asyncpg has asked the server to cancel the statement, and the connection goes back (or is
        closed) once that is done, in the background: a write then does not commit after its
        request has been answered. A schema change leaves its statements stale: it is closed."""
        clean = isinstance(error, asyncpg.PostgresError | DomainError | None)
        if clean and not isinstance(error, STALE_STATEMENTS):
            await self._release(connection, turn)
            return
        if clean:
            connection.terminate()
        releasing = asyncio.create_task(self._release(connection, turn))
        self._releasing.add(releasing)
        releasing.add_done_callback(self._releasing.discard)

    async def _release(self, connection: Any, turn: Hashable) -> None:
        try:
            await self._pool.release(connection, timeout=CLOSE_TIMEOUT)
        except Exception:  # asyncpg has closed the connection; the pool opens another
            logger.debug("a connection could not be reset and was closed", exc_info=True)
        finally:
            self._slots.release()
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

    async def _use_unnamed_statements(self, error: Exception) -> None:
        if not self.named:
            return
        self._connection.settings(self._connection.arguments["server_settings"], named=False)
        await self._reconnect()
        logger.error(
            "prepared statements do not survive between statements (%s): DATABASE_URL leads "
            "through a transaction-mode pooler without prepared-statement support. Switched "
            "to unnamed statements; set DB_TRANSACTION_POOLER=true to start that way.",
            describe(error),
        )

    async def _connect_as_a_pooler_allows(self, error: Exception) -> None:
        """A pooler that refuses startup parameters is in front: connect as it allows, with
        unnamed statements unless DB_STATEMENT_CACHE says otherwise."""
        self.pooled = True
        named = bool(self._statement_cache)
        self._connection.settings({"timezone": "UTC"}, named=named)
        await self._reconnect()
        logger.error(
            "the server refused the connection settings (%s): DATABASE_URL leads through a "
            "transaction-mode pooler. Connecting without them%s; set DB_TRANSACTION_POOLER=true "
            "to start that way, and set the timeouts on the role (see README, Operations).",
            describe(error),
            "" if named else ", with unnamed statements",
        )

    async def _reconnect(self) -> None:
        """New connections with the new arguments; those open now close as they come back."""
        self._pool.set_connect_args(self._connection.dsn, **self._connection.arguments)
        await self._pool.expire_connections()

    async def server_bounds(self) -> tuple[str, int, int]:
        """The role, and the statement and lock timeouts in force on a connection, in ms."""
        record = await self.fetchrow(SERVER_BOUNDS)
        assert record is not None
        return record["role"], record["statement_ms"], record["lock_ms"]


SERVER_BOUNDS = Statement("""
SELECT current_user::text AS role,
    (SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout') AS statement_ms,
    (SELECT setting::int FROM pg_settings WHERE name = 'lock_timeout') AS lock_ms""")


class Turns:
    """Statements on one row take turns. Behind a lock held elsewhere on that row, one of them
    waits in the database, holding a connection; the others wait here, holding none, so that the
    connections stay free for every other row."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._waiting: dict[Hashable, int] = {}

    async def take(self, key: Hashable) -> None:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            await lock.acquire()
        except BaseException:
            self._leave(key)
            raise

    def give_back(self, key: Hashable) -> None:
        self._locks[key].release()
        self._leave(key)

    def _leave(self, key: Hashable) -> None:
        waiting = self._waiting[key] - 1
        if waiting:
            self._waiting[key] = waiting
        else:
            del self._waiting[key], self._locks[key]
