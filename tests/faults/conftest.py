"""The fault tests: the service as deployed, against PostgreSQL (and PgBouncer) processes of their
own that they stop, freeze and lock. `make test-faults` runs them; `make test` does not."""

import asyncio
import itertools
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.databases import recreate_database
from tests.support.servers import SERVICE, free_port, running
from tests.support.throwaway import Postgres, postgres

_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[Postgres]:
    with postgres() as throwaway:
        yield throwaway


@pytest.fixture
def database(server: Postgres) -> str:
    """A fresh, empty database on the module's server."""
    return asyncio.run(recreate_database(server.url, f"faults_{os.getpid()}_{next(_names)}"))


@dataclass
class Service:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_lines(self, containing: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if containing in line]


@contextmanager
def service(
    database_url: str, log_dir: Path, *, ready_path: str = "/ready", **env: str
) -> Iterator[Service]:
    """`python -m app serve` on a free port, migrating at start, its output in a file."""
    port = free_port()
    log = log_dir / f"service-{port}.log"
    environment = {
        "DATABASE_URL": database_url,
        "MIGRATE_ON_START": "true",
        "LOG_LEVEL": "info",
        "WORKERS": "1",
        **env,
    }
    with running(SERVICE, environment, port, ready_path=ready_path, log=log) as process:
        if int(environment["WORKERS"]) > 1 and ready_path == "/ready":
            _until_every_worker_is_ready(port)
        yield Service(port, process, log)


def _until_every_worker_is_ready(port: int) -> None:
    """Workers share the socket, and each one migrates before it is ready: until twenty answers
    in a row say ready, one of them may not be yet."""
    deadline = time.monotonic() + 60
    in_a_row = 0
    while in_a_row < 20:
        assert time.monotonic() < deadline, "the workers were not all ready within 60 s"
        ready = httpx.get(f"http://127.0.0.1:{port}/ready", headers={"Connection": "close"})
        in_a_row = in_a_row + 1 if ready.status_code == 200 else 0
        if not in_a_row:
            time.sleep(0.1)
