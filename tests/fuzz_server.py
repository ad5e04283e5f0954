"""`make fuzz`: the st CLI against the service as deployed: uvicorn, its own port, a fresh database.

Writes a JUnit report under reports/fuzz and exits with schemathesis's status.
"""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from app.embedded import start_embedded_postgres
from tests.databases import recreate_database
from tests.jwks import AUDIENCE, ISSUER, SigningKey, claims, serve_jwks
from tests.servers import SERVICE, free_port, running

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports" / "fuzz"
FUZZ_DATABASE = "tasks_fuzz"
FUZZ_USER = "fuzz-user"


def _fuzz(
    mode: str,
    server_url: str,
    *,
    extra_env: dict[str, str] | None = None,
    config: Path = ROOT / "schemathesis.toml",
    run_options: tuple[str, ...] = (),
) -> int:
    """One st run against a fresh database and a server in the given AUTH_MODE."""
    print(f"== make fuzz: AUTH_MODE={mode}", flush=True)
    database_url = asyncio.run(recreate_database(server_url, FUZZ_DATABASE))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**(extra_env or {}), "AUTH_MODE": mode, "DATABASE_URL": database_url}
    env.setdefault("LOG_LEVEL", os.environ.get("LOG_LEVEL", "warning"))
    with running(SERVICE, env, port):
        reports = REPORTS / mode
        reports.mkdir(parents=True, exist_ok=True)
        command = [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(config),
            "run",
            "openapi/task-operations.yaml",
            "--checks",
            "all",
            *run_options,
            "--url",
            base_url,
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--report",
            "junit",
            "--report-dir",
            str(reports),
        ]
        return subprocess.run(command, cwd=ROOT, check=False).returncode


def main() -> int:
    server_url = os.environ.get("TEST_DATABASE_URL") or start_embedded_postgres("test-postgres")
    # AUTH_MODE=none trusts the path by design and does not enforce the contract's bearer auth:
    # no credentials are generated and ignored_auth is off. The jwt run checks authentication.
    open_status = _fuzz(
        "none",
        server_url,
        run_options=(
            "--generation-with-security-parameters",
            "false",
            "--exclude-checks",
            "ignored_auth",
        ),
    )
    key = SigningKey.generate("fuzz-key", "EdDSA")
    with serve_jwks(key) as jwks:
        token = key.sign(claims(FUZZ_USER))
        # The token acts for one user, so every request names that user; the rest of the
        # settings are schemathesis.toml's.
        config = REPORTS / "schemathesis-jwt.toml"
        REPORTS.mkdir(parents=True, exist_ok=True)
        config.write_text(
            (ROOT / "schemathesis.toml").read_text()
            + f'\n[parameters]\n"path.user_id" = "{FUZZ_USER}"\n'
            + f'\n[headers]\nAuthorization = "Bearer {token}"\n'
        )
        jwt_env = {"JWKS_URL": jwks.url, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE}
        jwt_status = _fuzz("jwt", server_url, extra_env=jwt_env, config=config)
    return open_status or jwt_status


if __name__ == "__main__":
    sys.exit(main())
