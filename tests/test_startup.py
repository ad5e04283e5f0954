"""Start-up without a database: the service answers at once, and says in one line what is wrong;
`make migrate` fails fast."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.servers import ROOT, SERVICE, free_port, running

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nothing"


def test_starts_without_a_database_and_logs_with_request_ids(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "service.log"
    env = {"DATABASE_URL": UNREACHABLE, "MIGRATE_ON_START": "false"}
    with running(SERVICE, env, port, ready_path="/health", log=log):
        base = f"http://127.0.0.1:{port}"
        for _ in range(3):
            response = httpx.get(f"{base}/users/alice/tasks", headers={"X-Request-ID": "trace-1"})
            assert response.status_code == 503
            assert response.headers["retry-after"] == "2"
            assert response.headers["content-type"] == "application/problem+json"
            assert "127.0.0.1" not in response.text
        assert httpx.get(f"{base}/ready").status_code == 503
        assert httpx.get(f"{base}/health").status_code == 200
    lines = [line for line in log.read_text().splitlines() if "database unavailable" in line]
    assert len(lines) == 1  # one line for the outage, not one per request
    assert "request_id=trace-1 " in lines[0]
    assert "ConnectionRefusedError" in lines[0]


def test_migrate_fails_fast_with_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": UNREACHABLE,
            "MIGRATION_DATABASE_URL": UNREACHABLE,
            "DB_CONNECT_TIMEOUT": "3",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 3 + 10
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("migrate: the migrations were not applied: ConnectionRefusedError")


def test_serves_at_once_while_the_migrations_wait_for_the_database(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "service.log"
    env = {"DATABASE_URL": UNREACHABLE, "MIGRATE_ON_START": "true"}
    with running(SERVICE, env, port, ready_path="/health", log=log):
        base = f"http://127.0.0.1:{port}"
        for path in ("/ready", "/users/alice/tasks"):
            response = httpx.get(f"{base}{path}")
            assert response.status_code == 503
            assert response.headers["retry-after"] == "2"
            assert response.json()["detail"] == "The database is not ready yet; retry later."
        time.sleep(1.5)  # the first retry comes after one second
    text = log.read_text()
    attempts = [line for line in text.splitlines() if "database not ready (attempt" in line]
    assert len(attempts) >= 2
    assert "ConnectionRefusedError" in attempts[0]
    assert "Traceback" not in text
