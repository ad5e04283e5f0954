"""Preparing the database while the service already answers: /health at once, the rest once ready.

The migrations are applied as soon as the database answers, retried with a backoff and one log line
per attempt; task operations answer 503 until then, so none runs against an older schema.
"""

import asyncio
import logging

from app.config import Settings
from app.db.database import CLIENT_MARGIN, Database
from app.db.migrate import upgrade
from app.observability.logs import describe

logger = logging.getLogger("app.db.startup")

FIRST_RETRY = 1.0
LAST_RETRY = 30.0


async def prepare_database(database: Database, settings: Settings, migration_url: str) -> None:
    delay = FIRST_RETRY
    attempt = 1
    while True:
        try:
            if settings.migrate_on_start:
                await asyncio.to_thread(
                    upgrade,
                    migration_url,
                    connect_timeout=settings.db_connect_timeout,
                    lock_timeout=settings.db_lock_timeout,
                )
                logger.info("migrations applied (attempt %d); serving task operations", attempt)
            database.ready = True
            if database.pooled:
                await _check_server_bounds(database, settings)
            return
        except Exception as error:  # any failure: say why, wait, try again
            logger.warning(
                "database not ready (attempt %d): %s; retrying in %g s",
                attempt,
                describe(error),
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, LAST_RETRY)
        attempt += 1


async def _check_server_bounds(database: Database, settings: Settings) -> None:
    """Behind a transaction-mode pooler the timeouts cannot be connection settings: the role must
    carry them. Say so, once, when it does not."""
    role, statement_ms, lock_ms = await database.server_bounds()
    wanted = (round(settings.db_statement_timeout * 1000), round(settings.db_lock_timeout * 1000))
    if 0 < statement_ms <= wanted[0] and 0 < lock_ms <= wanted[1]:
        return
    logger.warning(
        "behind a transaction-mode pooler, the server's timeouts come from the role, and role "
        "%(role)s has statement_timeout=%(statement)d ms, lock_timeout=%(lock)d ms: run "
        'ALTER ROLE "%(role)s" SET statement_timeout = %(want_statement)d; '
        'ALTER ROLE "%(role)s" SET lock_timeout = %(want_lock)d; until then each statement is '
        "bounded on the client side only (%(client)g s)",
        {
            "role": role,
            "statement": statement_ms,
            "lock": lock_ms,
            "want_statement": wanted[0],
            "want_lock": wanted[1],
            "client": settings.db_statement_timeout + CLIENT_MARGIN,
        },
    )
