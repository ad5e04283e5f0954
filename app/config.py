"""Settings from the environment and `.env`."""

import ipaddress
import ssl
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
MIN_SECRET_BYTES = 32  # an HS256 key is no stronger than its bytes of randomness (RFC 7518 3.2)

# libpq's sslmode values, as asyncpg's `ssl` argument understands them.
_BUDGET = r"^(off|[1-9][0-9]{0,8}/(second|minute|hour))$"

_SSL_MODES: dict[str, Any] = {"disable": False, "allow": "allow", "prefer": "prefer"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = "info"
    access_log: bool = True
    metrics: bool = True  # GET /metrics
    metrics_port: int | None = Field(default=None, ge=1, le=65535)  # unset: on the API's port
    metrics_host: str | None = None  # unset: HOST
    cors_origins: Annotated[list[str], NoDecode] = []
    db_pool_size: int = Field(default=8, ge=1, le=500)
    db_pool_timeout: float = Field(default=5.0, gt=0)
    db_connect_timeout: float = Field(default=10.0, gt=0)
    db_idle_lifetime: float = Field(default=240.0, gt=0)

    # Operations: bounded waits on the database, poolers, migrations, the HTTP server, shutdown.
    db_statement_timeout: float = Field(default=5.0, gt=0, le=3600)
    db_lock_timeout: float = Field(default=2.0, gt=0, le=3600)
    db_transaction_pooler: bool | None = None  # unset: detected from the host (Neon's -pooler)
    db_statement_cache: bool | None = None  # unset: on, except behind a transaction-mode pooler
    migration_database_url: str | None = None  # unset: DATABASE_URL
    migrate_on_start: bool = True
    http_keepalive_timeout: int = Field(default=75, ge=1, le=3600)
    http_read_timeout: float = Field(default=10.0, gt=0, le=300)
    http_max_header_bytes: int = Field(default=32 * 1024, ge=4096, le=1024 * 1024)
    shutdown_grace: int = Field(default=15, ge=1, le=600)

    require_if_match: bool = False
    idempotency_ttl: float = Field(default=24 * 3600.0, gt=0, le=30 * 24 * 3600)
    max_tasks_per_user: int = Field(default=10_000, ge=1, le=1_000_000)
    max_idempotency_keys_per_user: int = Field(default=1_000, ge=1, le=1_000_000)

    # Rate limits (app/http/rate_limits.py): `N/second`, `N/minute`, `N/hour` or `off`.
    rate_limit_reads: str = Field(default="10/second", pattern=_BUDGET)
    rate_limit_writes: str = Field(default="10/second", pattern=_BUDGET)
    rate_limit_cost_ms: int = Field(default=25, ge=0, le=60_000)  # 0: a request is one unit
    rate_limit_storage_url: str | None = Field(default=None, pattern=r"^rediss?://")
    max_requests_in_flight_per_user: int = Field(default=8, ge=1, le=10_000)

    auth_mode: Literal["none", "jwt"] = "none"
    jwks_url: str | None = None
    jwt_secret: SecretStr | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = []
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_verify_issuer: bool = True  # false: tokens of any issuer (JWT_ISSUER unset)
    jwt_verify_audience: bool = True  # false: tokens for any audience (JWT_AUDIENCE unset)
    jwt_leeway: int = Field(default=30, ge=0, le=60)
    jwks_refresh_cooldown: float = Field(default=60.0, ge=1, le=60)

    @field_validator("cors_origins", "jwt_algorithms", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _check_metrics_port(self) -> Self:
        same_host = self.metrics_host in (None, self.host)
        if self.metrics_port == self.port and same_host:
            raise ValueError(f"METRICS_PORT must differ from PORT ({self.port})")
        return self

    @model_validator(mode="after")
    def _check_auth(self) -> Self:
        if self.auth_mode != "jwt":
            return self
        if (self.jwks_url is None) == (self.jwt_secret is None):
            raise ValueError("AUTH_MODE=jwt needs exactly one of JWKS_URL and JWT_SECRET")
        # A key source verifies one family of algorithms only: no HS/RS confusion.
        family = ASYMMETRIC_ALGORITHMS if self.jwks_url else HMAC_ALGORITHMS
        if not self.jwt_algorithms:
            self.jwt_algorithms = ["EdDSA", "ES256", "RS256"] if self.jwks_url else ["HS256"]
        if unknown := set(self.jwt_algorithms) - family:
            source = "JWKS_URL" if self.jwks_url else "JWT_SECRET"
            raise ValueError(f"JWT_ALGORITHMS {sorted(unknown)} cannot be used with {source}")
        if self.jwt_secret is not None:
            size = len(self.jwt_secret.get_secret_value().encode())
            if size < MIN_SECRET_BYTES:
                raise ValueError(
                    f"JWT_SECRET has {size} bytes; it needs at least {MIN_SECRET_BYTES} random"
                    " bytes (openssl rand -base64 32)"
                )
        checks = [
            ("JWT_ISSUER", "iss", self.jwt_issuer, self.jwt_verify_issuer),
            ("JWT_AUDIENCE", "aud", self.jwt_audience, self.jwt_verify_audience),
        ]
        if missing := [
            (name, claim) for name, claim, value, check in checks if check and not value
        ]:
            names = " and ".join(name for name, _ in missing)
            claims = " and ".join(claim for _, claim in missing)
            waivers = " and ".join(f"{_waiver(name)}=false" for name, _ in missing)
            raise ValueError(
                f"AUTH_MODE=jwt needs {names}, which every token's {claims} must match"
                f" (or {waivers} to accept any)"
            )
        for name, _, value, check in checks:
            if value and not check:
                raise ValueError(f"{name} is set and {_waiver(name)}=false: keep one of them")
        return self


def _waiver(name: str) -> str:
    """The setting that turns a claim's check off: JWT_ISSUER's is JWT_VERIFY_ISSUER."""
    return name.replace("JWT_", "JWT_VERIFY_")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def describe_invalid(error: ValidationError) -> str:
    """What is wrong with the settings, on one line and without their values (secrets)."""
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        name = "_".join(str(part) for part in item["loc"]).upper()
        problems.append(f"{name}: {message}" if name else message)
    return "; ".join(problems)


def is_loopback(host: str) -> bool:
    """True for an address that only this machine can reach: 127.0.0.0/8, ::1, localhost."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost, or "" (every interface)
        return False


def unauthenticated_exposure(settings: Settings) -> str | None:
    """Why the service must not serve as configured: an AUTH_MODE left unset on an address that
    other machines reach would trust the path's user id from anyone. None when it may serve."""
    if settings.auth_mode != "none" or is_loopback(settings.host):
        return None
    if "auth_mode" in settings.model_fields_set:
        return None
    return (
        f"HOST={settings.host} is reachable from other machines and AUTH_MODE is unset: set"
        " AUTH_MODE=jwt, or AUTH_MODE=none to serve without authentication"
    )


def asyncpg_url(database_url: str) -> tuple[URL, dict[str, Any]]:
    """Turn a libpq-style URL (as Neon hands it out) into an asyncpg URL and connect arguments.

    asyncpg knows neither `sslmode` nor `channel_binding`: sslmode becomes an SSL context that
    verifies the server's certificate, and channel_binding is dropped.
    """
    url = make_url(database_url)
    if not url.drivername.startswith("postgres"):
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    query = dict(url.query)
    sslmode = query.pop("sslmode", None)
    query.pop("channel_binding", None)
    connect_args: dict[str, Any] = {}
    if isinstance(sslmode, str):
        if sslmode in _SSL_MODES:
            connect_args["ssl"] = _SSL_MODES[sslmode]
        else:
            context = ssl.create_default_context()
            if sslmode == "verify-ca":
                context.check_hostname = False
            connect_args["ssl"] = context
    url = url.set(drivername="postgresql+asyncpg", query=query)
    return url, connect_args
