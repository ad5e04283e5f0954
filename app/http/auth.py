"""Bearer JWTs from the frontend's auth server: one user per token.

Keys come from a JWKS endpoint (EdDSA, ECDSA, RSA) or a shared secret (HMAC); the allowed
algorithms come from configuration, never from the token.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from fastapi import Request

from app.config import HMAC_ALGORITHMS, Settings
from app.problems import DomainError, Forbidden, Unauthorized

logger = logging.getLogger("app.http.auth")

MAX_TOKEN_LENGTH = 8192
MAX_EMAIL_LENGTH = 320


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    email: str | None


class JWKSCache:
    """Keys by kid, fetched again for an unknown kid at most once per cool-down."""

    def __init__(self, url: str, client: httpx.AsyncClient, cooldown: float) -> None:
        self._url = url
        self._client = client
        self._cooldown = cooldown
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self._cooldown:
                await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            response = await self._client.get(self._url)
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json()).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as error:
            logger.warning("JWKS fetch failed: %s", type(error).__name__)
            return
        self._keys = {key.key_id: key for key in keys}
        logger.info("JWKS fetched: %d keys", len(self._keys))


class Authenticator:
    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self._algorithms = list(settings.jwt_algorithms)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._jwks = (
            JWKSCache(settings.jwks_url, client, settings.jwks_refresh_cooldown)
            if settings.jwks_url and client
            else None
        )

    async def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("no bearer token", token_sent=False)
        try:
            claims = await self._verify(token)
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            logger.info("token rejected: %s: %s", type(error).__name__, error)
            raise Unauthorized("invalid token", token_sent=True) from None
        email = claims.get("email")
        if not (isinstance(email, str) and len(email) <= MAX_EMAIL_LENGTH and "\0" not in email):
            email = None
        return Principal(user_id=claims["sub"], email=email)

    async def _verify(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise jwt.InvalidTokenError("token too long")
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} is not allowed")
        key: Any
        if algorithm in HMAC_ALGORITHMS:
            key = self._secret
        else:
            assert self._jwks is not None
            jwk = await self._jwks.key(header.get("kid"))
            if jwk is None:
                raise jwt.InvalidKeyError(f"no key with kid {header.get('kid')!r}")
            declared = jwk._jwk_data.get("alg")
            if declared is not None and declared != algorithm:
                raise jwt.InvalidAlgorithmError(f"key {jwk.key_id!r} is for {declared}")
            key = jwk.key
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
            options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
        )
        if not isinstance(claims["sub"], str):
            raise jwt.InvalidTokenError("sub is not a string")
        return claims


async def authorize(request: Request) -> None:
    """Run before every secured operation in jwt mode: the token's subject must own the path.

    The rate limits (app/http/rate_limits.py) have verified the token already, to know whose
    budget the request spends: their outcome is in the request's state."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        refusal: DomainError | None = getattr(request.state, "refusal", None)
        if refusal is not None:
            raise refusal
        authenticator: Authenticator = request.state.authenticator
        principal = await authenticator.authenticate(request.headers.get("authorization"))
    if principal.user_id != request.path_params.get("user_id"):
        raise Forbidden
    request.state.principal = principal
