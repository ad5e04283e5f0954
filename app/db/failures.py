"""How a statement can fail for want of the database, and the outage those failures make.

A failure of the database's availability (no connection, a timeout, a lock not granted, the
server shutting down) is the database's, not the request's: the client may retry (503). An outage
is logged when it starts and when it ends, not once per request.
"""

import logging
import time

import asyncpg

from app.observability.metrics import DATABASE_ERRORS

logger = logging.getLogger("app.db.failures")

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


class Outage:
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
