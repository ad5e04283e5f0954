"""`make smoke`: the frontend's openapi-fetch flow (clients/flows/openapi-fetch.ts, compiled to
clients/dist) against the service as deployed, in jwt mode with a real token."""

import os
import subprocess
import sys
from pathlib import Path

from tests.support.servers import jwt_mode, service

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "clients" / "dist" / "clients" / "flows" / "openapi-fetch.js"
SMOKE_USER = "auth0|smoke-user"  # a subject as Auth0 issues them


def main() -> int:
    with jwt_mode(SMOKE_USER) as (env, token), service("tasks_smoke", env) as base_url:
        flow_env = {**os.environ, "BASE_URL": base_url, "USER_ID": SMOKE_USER, "TOKEN": token}
        return subprocess.run(["node", str(FLOW)], env=flow_env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
