"""DATABASE_URL as Neon's console hands it out, converted for asyncpg."""

import ssl

import pytest

from app.config import Settings, asyncpg_url

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
