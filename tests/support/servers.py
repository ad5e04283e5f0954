"""Servers started as separate processes, the way they are deployed, for the tests and tooling."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.db.embedded import start_embedded_postgres
from tests.support.databases import recreate_database
from tests.support.jwks import AUDIENCE, ISSUER, SigningKey, claims, serve_jwks

ROOT = Path(__file__).resolve().parents[2]
SERVICE = (sys.executable, "-m", "app", "serve")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(
    command: tuple[str, ...],
    env: dict[str, str],
    port: int,
    *,
    ready_path: str = "/ready",
    quiet: bool = False,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` on port (of 127.0.0.1 unless env names another HOST), wait until
    ready_path answers 2xx on 127.0.0.1, stop it after.

    Its output goes to `log` when given, nowhere when quiet, to the terminal otherwise.
    """
    environment = {**os.environ, "HOST": "127.0.0.1", **env, "PORT": str(port)}
    output: Any = subprocess.DEVNULL if quiet else None
    if log is not None:
        output = log.open("ab")
    server = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{command} exited with {server.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not become ready within 60 s")
            time.sleep(0.2)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)
        if log is not None:
            output.close()


def database_server_url() -> str:
    """The PostgreSQL server for tooling runs: TEST_DATABASE_URL's, or the embedded one."""
    return os.environ.get("TEST_DATABASE_URL") or start_embedded_postgres("test-postgres")


@contextmanager
def service(
    database: str, env: dict[str, str] | None = None, *, quiet: bool = False
) -> Iterator[str]:
    """The service on a free port over a fresh database called `database`; yields its base URL."""
    database_url = asyncio.run(recreate_database(database_server_url(), database))
    port = free_port()
    environment = {"DATABASE_URL": database_url, **(env or {})}
    environment.setdefault("LOG_LEVEL", os.environ.get("LOG_LEVEL", "warning"))
    with running(SERVICE, environment, port, quiet=quiet):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def jwt_mode(user_id: str) -> Iterator[tuple[dict[str, str], str]]:
    """AUTH_MODE=jwt settings with a local JWKS server, and a real EdDSA token for user_id."""
    key = SigningKey.generate("local-key", "EdDSA")
    with serve_jwks(key) as jwks:
        env = {
            "AUTH_MODE": "jwt",
            "JWKS_URL": jwks.url,
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
        }
        yield env, key.sign(claims(user_id))
