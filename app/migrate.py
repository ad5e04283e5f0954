"""Alembic, driven from code so that `make run` and the tests migrate the same way."""

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def upgrade(database_url: str, revision: str = "head") -> None:
    config = Config(toml_file=str(ROOT / "pyproject.toml"))
    config.set_main_option("script_location", str(ROOT / "app" / "migrations"))
    config.attributes["database_url"] = database_url
    command.upgrade(config, revision)
