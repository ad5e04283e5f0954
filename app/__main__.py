"""`python -m app serve|migrate`: what `make run` and `make migrate` call."""

import logging.config
import os
import sys

import uvicorn

from app.config import get_settings
from app.embedded import start_embedded_postgres
from app.logs import log_config
from app.migrate import upgrade


def _database_url() -> str:
    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    url = start_embedded_postgres()
    os.environ["DATABASE_URL"] = url  # for the server's worker processes
    get_settings.cache_clear()
    return url


def main(argv: list[str]) -> int:
    logging.config.dictConfig(log_config(get_settings().log_level))
    command = argv[1] if len(argv) > 1 else "serve"
    if command not in ("serve", "migrate"):
        print("usage: python -m app [serve|migrate]", file=sys.stderr)
        return 2
    upgrade(_database_url())
    if command == "serve":
        settings = get_settings()
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=log_config(settings.log_level),  # in every worker process too
            log_level=settings.log_level,
            access_log=False,
            proxy_headers=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
