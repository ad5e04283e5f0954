"""Bearer JWTs from the frontend's auth server: one user per token.

Keys come from a JWKS endpoint (EdDSA, ECDSA, RSA; app/http/keys.py) or a shared secret (HMAC);
the allowed algorithms come from configuration, never from the token. A token's issuer and
audience are checked unless the configuration waives them.
"""

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from fastapi import Request

from app.config import HMAC_ALGORITHMS, Settings
from app.http.keys import KeySet
from app.problems import DomainError, Forbidden, Unauthorized

logger = logging.getLogger("app.http.auth")

MAX_TOKEN_LENGTH = 8192
MAX_EMAIL_LENGTH = 320
MAX_REASON_LENGTH = 200  # characters of a rejection's reason in the log


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    email: str | None


class Authenticator:
    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self._algorithms = list(settings.jwt_algorithms)
        self._issuer = settings.jwt_issuer if settings.jwt_verify_issuer else None
        self._audience = settings.jwt_audience if settings.jwt_verify_audience else None
        self._required = ["exp", "sub"]
        self._required += ["iss"] if self._issuer else []
        self._required += ["aud"] if self._audience else []
        self._leeway = settings.jwt_leeway
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._jwks = (
            KeySet(settings.jwks_url, client, settings.jwks_refresh_cooldown)
            if settings.jwks_url and client
            else None
        )

    async def refresh_keys(self) -> None:
        """Keep the JWKS's keys current for as long as the app runs (nothing to do for a secret)."""
        if self._jwks is not None:
            await self._jwks.refresh_periodically()

    async def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("no bearer token", token_sent=False)
        try:
            claims = await self._verify(token)
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            # Rejections are the callers' business, and a flood of bad tokens must not flood the
            # log: debug level, the reason only (never the token), cut short.
            logger.debug("token rejected: %s", _reason(error))
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
            options={"require": self._required, "verify_aud": self._audience is not None},
        )
        if not isinstance(claims["sub"], str):
            raise jwt.InvalidTokenError("sub is not a string")
        return claims


def _reason(error: Exception) -> str:
    """Why a token was rejected, for the log: one line of printable ASCII of at most
    MAX_REASON_LENGTH characters, since it may quote the token's header (the caller's choice)."""
    reason = f"{type(error).__name__}: {error}".encode("ascii", "backslashreplace").decode()
    reason = "".join(char if char.isprintable() else "?" for char in reason)
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[: MAX_REASON_LENGTH - 3] + "..."
    return reason


async def authorize(request: Request) -> None:
    """Run before every secured operation in jwt mode: the token's subject must own the path.

    The rate limits (app/http/rate_limits.py), in front of every task operation, have verified
    the token already, to know whose budget the request spends: the principal, or the refusal to
    answer with, is in the request's state."""
    refusal: DomainError | None = getattr(request.state, "refusal", None)
    if refusal is not None:
        raise refusal
    principal: Principal = request.state.principal
    if principal.user_id != request.path_params.get("user_id"):
        raise Forbidden
