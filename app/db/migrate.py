"""Alembic, driven from code so that start-up, `make migrate` and the tests migrate the same way."""

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]


def upgrade(
    database_url: str,
    revision: str = "head",
    *,
    connect_timeout: float = 10.0,
    lock_timeout: float = 10.0,
) -> None:
    """Apply the migrations. A migration that would wait longer than lock_timeout for another
    transaction's lock gives up instead (every request would queue behind its lock meanwhile)."""
    config = Config(toml_file=str(ROOT / "pyproject.toml"))
    config.set_main_option("script_location", str(ROOT / "app" / "db" / "migrations"))
    config.attributes.update(
        database_url=database_url, connect_timeout=connect_timeout, lock_timeout=lock_timeout
    )
    command.upgrade(config, revision)
