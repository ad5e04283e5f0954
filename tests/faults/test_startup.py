"""Started while the database is down: the service answers at once (/health 200, the rest 503),
and applies the migrations as soon as the database answers."""

import asyncio
import re
import time
from pathlib import Path

from tests.faults.client import call
from tests.faults.conftest import service
from tests.support.throwaway import Postgres


async def test_serves_at_once_and_migrates_once_the_database_is_up(
    server: Postgres, database: str, tmp_path: Path
) -> None:
    server.stop()
    try:
        with service(database, tmp_path, ready_path="/health") as running:
            port = running.port
            for answer in (
                await call(port, "GET", "/ready"),
                await call(port, "POST", "/users/alice/tasks", {"title": "early"}),
                await call(port, "GET", "/users/alice/tasks"),
            ):
                assert answer.status == 503
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.headers["retry-after"].isdigit()
            await asyncio.sleep(3.5)
            attempts = running.log_lines("database not ready (attempt")
            assert len(attempts) >= 2
            assert all("ConnectionRefusedError" in line for line in attempts)

            server.start()
            deadline = time.monotonic() + 40
            while (await call(port, "GET", "/ready")).status != 200:
                assert time.monotonic() < deadline, "not ready within 40 s of the database"
                await asyncio.sleep(0.2)
            created = await call(port, "POST", "/users/alice/tasks", {"title": "late"})
            assert created.status == 201

            applied = running.log_lines("migrations applied")
            assert len(applied) == 1
            attempt = re.search(r"attempt (\d+)", applied[0])
            assert attempt is not None
            assert int(attempt.group(1)) == len(running.log_lines("database not ready")) + 1
            assert "Traceback" not in running.log.read_text()
    finally:
        if server.process is None or server.process.poll() is not None:
            server.start()
