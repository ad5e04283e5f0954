"""`make fuzz`: the st CLI against the service as deployed: uvicorn, its own port, a fresh database.

Writes a JUnit report under reports/fuzz and exits with schemathesis's status.
"""

import os
import subprocess
import sys
from pathlib import Path

from tests.support.servers import jwt_mode, service

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports" / "fuzz"
FUZZ_DATABASE = "tasks_fuzz"
# A subject as some identity providers issue them. schemathesis checks a configured path value as
# it is given and sends it percent-encoded where URLs need it: with a `|` the two differ and its
# checks misjudge answers, so this one holds an `@`, which a URL carries as it is. Ids with `|`
# are generated from the contract in the AUTH_MODE=none runs.
FUZZ_USER = "fuzz-user@example.com"
# A fuzzer is a client far faster than any frontend: budgets its thousands of requests fit in, so
# that it tests what lies behind them (their answers still carry the RateLimit fields; the 429s
# have tests of their own, tests/test_rate_limits.py).
FUZZ_BUDGETS = {"RATE_LIMIT_READS": "100000/minute", "RATE_LIMIT_WRITES": "100000/minute"}


def _fuzz(
    mode: str,
    *,
    extra_env: dict[str, str] | None = None,
    config: Path = ROOT / "schemathesis.toml",
    run_options: tuple[str, ...] = (),
    token: str | None = None,
) -> int:
    """One st run against a fresh database and a server in the given AUTH_MODE."""
    print(f"== make fuzz: AUTH_MODE={mode}", flush=True)
    env = {**FUZZ_BUDGETS, **(extra_env or {}), "AUTH_MODE": mode}
    with service(FUZZ_DATABASE, env) as base_url:
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
        hooks = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.fuzz_hooks"}
        if token is not None:
            hooks["FUZZ_BEARER_TOKEN"] = token  # valid_token_is_accepted checks every answer
        return subprocess.run(command, cwd=ROOT, env=hooks, check=False).returncode


def main() -> int:
    # AUTH_MODE=none trusts the path by design and does not enforce the contract's bearer auth:
    # no credentials are generated and ignored_auth is off. The jwt run checks authentication.
    open_status = _fuzz(
        "none",
        run_options=(
            "--generation-with-security-parameters",
            "false",
            "--exclude-checks",
            "ignored_auth",
        ),
    )
    with jwt_mode(FUZZ_USER) as (jwt_env, token):
        # The token is the contract's bearerAuth credential and acts for one user, so every
        # request names that user; the rest of the settings are schemathesis.toml's.
        config = REPORTS / "schemathesis-jwt.toml"
        REPORTS.mkdir(parents=True, exist_ok=True)
        config.write_text(
            (ROOT / "schemathesis.toml").read_text()
            + f'\n[parameters]\n"path.user_id" = "{FUZZ_USER}"\n'
            + f'\n[auth.openapi.bearerAuth]\nbearer = "{token}"\n'
        )
        jwt_status = _fuzz("jwt", extra_env=jwt_env, config=config, token=token)
    return open_status or jwt_status


if __name__ == "__main__":
    sys.exit(main())
