"""Schemathesis against the contract file, on the in-process app over real PostgreSQL.

The examples, coverage and fuzzing phases run on every operation with every check; the state
machine follows the contract's links from a created task. Both run twice: with AUTH_MODE=none,
and with AUTH_MODE=jwt and a valid token for one fixed user. The database is emptied before each
example and each stateful run, so that a failure reproduces from the seed in schemathesis.toml.
"""

import asyncio
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from app.config import Settings
from app.http.main import create_app
from tests.conftest import truncate
from tests.support import fuzz_hooks  # registers the hooks and the token check
from tests.support.jwks import AUDIENCE, ISSUER, SigningKey, claims, serve_jwks

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "task-operations.yaml"
# A subject as some identity providers issue them. schemathesis checks a configured path value as
# it is given and sends it percent-encoded where URLs need it: with a `|` the two differ and its
# checks misjudge answers, so this one holds an `@`, which a URL carries as it is. Ids with `|`
# are generated from the contract in the AUTH_MODE=none runs.
FUZZ_USER = "fuzz-user@example.com"


@pytest.fixture(scope="module")
def open_contract(database_url: str) -> Any:
    schema = schemathesis.openapi.from_path(SPEC)
    schema.app = create_app(Settings(_env_file=None), database_url=database_url)
    # AUTH_MODE=none trusts the path by design and does not enforce the contract's bearer auth:
    # here no credentials are generated and ignored_auth is off. The jwt-mode tests below check
    # authentication with every check on.
    schema.config.generation.with_security_parameters = False
    schema.config.checks.ignored_auth.enabled = False
    return schema


@pytest.fixture(scope="module")
def jwt_contract(database_url: str) -> Iterator[Any]:
    key = SigningKey.generate("fuzz-key", "EdDSA")
    with serve_jwks(key) as jwks:
        settings = Settings(
            auth_mode="jwt",
            jwks_url=jwks.url,
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
            _env_file=None,
        )
        # The token is the contract's bearerAuth credential: schemathesis knows it is valid, and
        # sends requests without it, or with another, to check that authentication is enforced.
        settings_file = tomllib.loads((ROOT / "schemathesis.toml").read_text())
        token = key.sign(claims(FUZZ_USER))
        fuzz_hooks.VALID_TOKENS.add(token)
        bearer = {"bearerAuth": {"bearer": token}}
        config = schemathesis.Config.from_dict({**settings_file, "auth": {"openapi": bearer}})
        schema = schemathesis.openapi.from_path(SPEC, config=config)
        schema.app = create_app(settings, database_url=database_url)
        schema.config.update(parameters={"path.user_id": FUZZ_USER})
        yield schema


open_schema = schemathesis.pytest.from_fixture("open_contract")
jwt_schema = schemathesis.pytest.from_fixture("jwt_contract")


@open_schema.parametrize()
def test_operations_keep_the_contract(case: Any, database_url: str) -> None:
    asyncio.run(truncate(database_url))
    case.call_and_validate()


@jwt_schema.parametrize()
def test_operations_keep_the_contract_with_bearer_tokens(case: Any, database_url: str) -> None:
    asyncio.run(truncate(database_url))
    case.call_and_validate()


def _lifecycle(schema: Any, database_url: str) -> Any:
    class TaskLifecycle(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            asyncio.run(truncate(database_url))

    return TaskLifecycle


def test_stateful_links_keep_the_contract(open_contract: Any, database_url: str) -> None:
    _lifecycle(open_contract, database_url).run()


def test_stateful_links_keep_the_contract_with_bearer_tokens(
    jwt_contract: Any, database_url: str
) -> None:
    _lifecycle(jwt_contract, database_url).run()


def test_the_bearer_token_runs_were_answered() -> None:
    """The runs above with a valid token got answers other than 401 (valid_token_is_accepted
    fails any 401 to it), and among them successes: they tested the operations, not the gate."""
    assert fuzz_hooks.ANSWERED_WITH_TOKEN, "no request carried the valid token"
    assert {status for status in fuzz_hooks.ANSWERED_WITH_TOKEN if 200 <= status < 300}
