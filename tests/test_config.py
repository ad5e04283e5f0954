"""Settings: DATABASE_URL as Neon's console hands it out, converted for asyncpg; what jwt mode
requires; and the refusals at start, in one line: an unauthenticated service on an address that
other machines reach, or invalid authentication settings."""

import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from app.config import (
    Settings,
    asyncpg_url,
    describe_invalid,
    is_loopback,
    unauthenticated_exposure,
)
from tests.support.servers import ROOT, SERVICE, free_port, running

NEON = (
    "postgresql://alex:s3cret@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb"
    "?sslmode=require&channel_binding=require"
)


def test_neon_url_becomes_asyncpg_with_a_verifying_ssl_context() -> None:
    url, connect_args = asyncpg_url(NEON)
    assert url.drivername == "postgresql+asyncpg"
    assert url.host == "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"
    assert url.password == "s3cret"
    assert dict(url.query) == {}
    context = connect_args["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_driver_is_always_asyncpg(given: str, driver: str) -> None:
    assert asyncpg_url(given)[0].drivername == driver


def test_sslmode_disable_and_unix_socket_host_are_kept() -> None:
    url, connect_args = asyncpg_url(
        "postgresql://postgres@/db?host=/run/postgresql&sslmode=disable"
    )
    assert connect_args == {"ssl": False}
    assert dict(url.query) == {"host": "/run/postgresql"}


def test_verify_ca_checks_the_chain_but_not_the_name() -> None:
    context = asyncpg_url("postgresql://u@h/db?sslmode=verify-ca")[1]["ssl"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is False


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="postgresql"):
        asyncpg_url("mysql://u@h/db")


def test_cors_origins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.delenv("CORS_ORIGINS")
    assert Settings(_env_file=None).cors_origins == []


JWKS = "http://127.0.0.1:3000/api/auth/jwks"
ISSUER = "https://auth.example.com"


def test_configuration_refuses_mixed_algorithm_families() -> None:
    with pytest.raises(ValueError, match="cannot be used with JWKS_URL"):
        Settings(auth_mode="jwt", jwks_url=JWKS, jwt_algorithms="RS256,HS256")
    with pytest.raises(ValueError, match="cannot be used with JWT_SECRET"):
        Settings(auth_mode="jwt", jwt_secret="s", jwt_algorithms="RS256")
    with pytest.raises(ValueError, match="exactly one"):
        Settings(auth_mode="jwt")
    with pytest.raises(ValueError, match="less than or equal to 60"):
        Settings(jwt_leeway=61)


def test_jwt_mode_needs_an_issuer_and_an_audience_unless_waived() -> None:
    both = "needs JWT_ISSUER and JWT_AUDIENCE.*JWT_VERIFY_ISSUER=false and JWT_VERIFY_AUDIENCE"
    with pytest.raises(ValidationError, match=both):
        Settings(auth_mode="jwt", jwks_url=JWKS, _env_file=None)
    with pytest.raises(ValidationError, match="needs JWT_AUDIENCE, which every token's aud"):
        Settings(auth_mode="jwt", jwks_url=JWKS, jwt_issuer=ISSUER, _env_file=None)
    with pytest.raises(ValidationError, match="needs JWT_ISSUER, which every token's iss"):
        Settings(auth_mode="jwt", jwks_url=JWKS, jwt_verify_audience=False, _env_file=None)
    waived = Settings(
        auth_mode="jwt",
        jwks_url=JWKS,
        jwt_verify_issuer=False,
        jwt_verify_audience=False,
        _env_file=None,
    )
    assert waived.jwt_issuer is None
    assert waived.jwt_audience is None
    checked = Settings(
        auth_mode="jwt", jwks_url=JWKS, jwt_issuer=ISSUER, jwt_audience=ISSUER, _env_file=None
    )
    assert (checked.jwt_issuer, checked.jwt_audience) == (ISSUER, ISSUER)
    # Without authentication there is nothing to check.
    assert Settings(auth_mode="none", _env_file=None).jwt_issuer is None


def test_a_claim_both_named_and_waived_is_refused() -> None:
    with pytest.raises(ValidationError, match="JWT_ISSUER is set and JWT_VERIFY_ISSUER=false"):
        Settings(
            auth_mode="jwt",
            jwks_url=JWKS,
            jwt_issuer=ISSUER,
            jwt_audience=ISSUER,
            jwt_verify_issuer=False,
            _env_file=None,
        )


@pytest.mark.parametrize(
    ("secret", "accepted"),
    [
        ("a" * 31, False),
        ("a" * 32, True),
        ("é" * 15 + "a", False),  # 16 characters, 31 bytes
        ("é" * 16, True),  # 16 characters, 32 bytes
    ],
)
def test_a_secret_needs_32_bytes(secret: str, accepted: bool) -> None:
    def settings() -> Settings:
        return Settings(
            auth_mode="jwt",
            jwt_secret=secret,
            jwt_issuer=ISSUER,
            jwt_audience=ISSUER,
            _env_file=None,
        )

    if accepted:
        assert settings().jwt_secret is not None
        return
    with pytest.raises(ValidationError, match="JWT_SECRET has 31 bytes; it needs at least 32"):
        settings()


def test_the_metrics_port_differs_from_the_apis() -> None:
    with pytest.raises(ValidationError, match="METRICS_PORT must differ from PORT"):
        Settings(port=8000, metrics_port=8000, _env_file=None)
    elsewhere = Settings(port=8000, metrics_port=8000, metrics_host="10.0.0.5", _env_file=None)
    assert elsewhere.metrics_port == 8000
    assert Settings(_env_file=None).metrics_port is None


def test_errors_are_described_in_one_line_without_the_values() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(auth_mode="jwt", jwt_secret="short-and-secret", port=70000, _env_file=None)
    described = describe_invalid(raised.value)
    assert described == "PORT: Input should be less than or equal to 65535"
    with pytest.raises(ValidationError) as raised:
        Settings(auth_mode="jwt", jwt_secret="short-and-secret", _env_file=None)
    described = describe_invalid(raised.value)
    assert described.startswith("JWT_SECRET has 16 bytes")
    assert "short-and-secret" not in described
    assert "\n" not in described


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("tasks.internal", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_unset_auth_mode_is_refused_on_an_address_other_machines_reach() -> None:
    refusal = unauthenticated_exposure(Settings(host="0.0.0.0", _env_file=None))
    assert refusal is not None
    assert "HOST=0.0.0.0" in refusal
    assert "AUTH_MODE=jwt" in refusal
    assert "AUTH_MODE=none" in refusal
    assert unauthenticated_exposure(Settings(_env_file=None)) is None  # 127.0.0.1
    explicit = Settings(host="0.0.0.0", auth_mode="none", _env_file=None)
    assert unauthenticated_exposure(explicit) is None


def test_an_auth_mode_from_the_environment_counts_as_explicit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.delenv("AUTH_MODE", raising=False)
    assert unauthenticated_exposure(Settings(_env_file=None)) is not None
    monkeypatch.setenv("AUTH_MODE", "none")
    assert unauthenticated_exposure(Settings(_env_file=None)) is None


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m app serve` with the given settings on a free port, and no .env file."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AUTH_", "JWT_", "JWKS_", "HOST", "PORT"))
    }
    environment |= {"PYTHONPATH": str(ROOT), "PORT": str(free_port()), **env}
    return subprocess.run(
        SERVICE, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60
    )


def test_the_service_refuses_to_serve_everyone_unauthenticated_by_default(
    tmp_path: Path,
) -> None:
    result = _serve(tmp_path, HOST="0.0.0.0", DATABASE_URL="postgresql://u@127.0.0.1:1/db")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "serve: not started: HOST=0.0.0.0 is reachable from other machines and AUTH_MODE is"
        " unset: set AUTH_MODE=jwt, or AUTH_MODE=none to serve without authentication"
    ]


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        (
            {"JWKS_URL": JWKS},
            "AUTH_MODE=jwt needs JWT_ISSUER and JWT_AUDIENCE",
        ),
        (
            {"JWT_SECRET": "twenty-bytes-secret!", "JWT_VERIFY_ISSUER": "false"},
            "JWT_SECRET has 20 bytes",
        ),
    ],
)
def test_invalid_auth_settings_stop_the_start_with_one_line(
    tmp_path: Path, env: dict[str, str], reason: str
) -> None:
    result = _serve(tmp_path, AUTH_MODE="jwt", DATABASE_URL="postgresql://u@127.0.0.1:1/db", **env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"serve: the settings are not valid: {reason}")
    assert "twenty-bytes-secret!" not in line


def test_an_explicit_none_serves_everyone_with_one_warning(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    port = free_port()
    env = {"HOST": "0.0.0.0", "AUTH_MODE": "none", "DATABASE_URL": database_url}
    with running(SERVICE, env, port, log=log):
        response = httpx.get(f"http://127.0.0.1:{port}/users/alice/tasks")
        assert response.status_code == 200
    warnings = [line for line in log.read_text().splitlines() if "AUTH_MODE=none" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("WARNING ")
    assert "HOST=0.0.0.0" in warnings[0]
