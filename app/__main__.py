"""`python -m app serve|migrate`: what `make run` and `make migrate` call."""

import logging
import logging.config
import os
import sys

from pydantic import ValidationError

from app.config import (
    Settings,
    describe_invalid,
    get_settings,
    is_loopback,
    unauthenticated_exposure,
)
from app.db.embedded import start_embedded_postgres
from app.db.migrate import upgrade
from app.http.server import serve
from app.observability.logs import describe, log_config

logger = logging.getLogger("app")


def _database_url() -> str:
    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    url = start_embedded_postgres()
    os.environ["DATABASE_URL"] = url  # for the server's worker processes
    get_settings.cache_clear()
    return url


def _migrate() -> int:
    """Apply the migrations now, or say in one line why not: a deployment step fails fast."""
    settings = get_settings()
    url = settings.migration_database_url or _database_url()
    try:
        upgrade(
            url,
            connect_timeout=settings.db_connect_timeout,
            lock_timeout=settings.db_lock_timeout,
        )
    except Exception as error:  # no traceback: the cause is the answer
        print(f"migrate: the migrations were not applied: {describe(error)}", file=sys.stderr)
        return 1
    return 0


def _serve(settings: Settings) -> int:
    if refusal := unauthenticated_exposure(settings):
        print(f"serve: not started: {refusal}", file=sys.stderr)
        return 2
    if settings.auth_mode == "none" and not is_loopback(settings.host):
        logger.warning(
            "AUTH_MODE=none on HOST=%s: no authentication, the path's user id is trusted from"
            " any client",
            settings.host,
        )
    _database_url()
    serve(get_settings())  # applies the migrations itself, once the database answers
    return 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "serve"
    if command not in ("serve", "migrate"):
        print("usage: python -m app [serve|migrate]", file=sys.stderr)
        return 2
    try:
        settings = get_settings()
    except ValidationError as error:  # one line, without the values: a secret may be among them
        print(f"{command}: the settings are not valid: {describe_invalid(error)}", file=sys.stderr)
        return 2
    logging.config.dictConfig(log_config(settings.log_level))
    if command == "migrate":
        return _migrate()
    return _serve(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
