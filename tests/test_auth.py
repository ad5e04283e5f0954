"""AUTH_MODE=jwt with real signed tokens: JWKS (EdDSA, ES256, RS256) and HS256."""

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.config import Settings
from app.http.auth import MAX_REASON_LENGTH
from tests.conftest import serving, truncate
from tests.support.databases import connect
from tests.support.jwks import AUDIENCE, ISSUER, JWKSServer, SigningKey, claims, serve_jwks
from tests.support.servers import SERVICE, free_port, running

ED25519 = SigningKey.generate("ed-1", "EdDSA")
ES256 = SigningKey.generate("ec-1", "ES256")
RS256 = SigningKey.generate("rsa-1", "RS256")
SECRET = "a-shared-secret-of-at-least-thirty-two-bytes"
CHALLENGE = 'Bearer realm="tasks"'
INVALID = 'Bearer realm="tasks", error="invalid_token"'


@pytest.fixture(scope="module")
def jwks() -> Iterator[JWKSServer]:
    with serve_jwks(ED25519, ES256, RS256) as server:
        yield server


async def _client(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await truncate(database_url)
    async with serving(database_url, settings) as client:
        yield client


@pytest.fixture
async def jwt_client(jwks: JWKSServer, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        auth_mode="jwt",
        jwks_url=jwks.url,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks_refresh_cooldown=1,
        _env_file=None,
    )
    async for client in _client(settings, database_url):
        yield client


@pytest.fixture
async def hs_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        auth_mode="jwt",
        jwt_secret=SECRET,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        _env_file=None,
    )
    async for client in _client(settings, database_url):
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _create(client: httpx.AsyncClient, token: str, user: str = "alice") -> httpx.Response:
    return await client.post(f"/users/{user}/tasks", json={"title": "x"}, headers=_bearer(token))


@pytest.mark.parametrize("key", [ED25519, ES256, RS256], ids=lambda key: key.algorithm)
async def test_a_token_acts_for_its_own_user(
    jwt_client: httpx.AsyncClient, key: SigningKey
) -> None:
    token = key.sign(claims("alice"))
    created = await _create(jwt_client, token)
    assert created.status_code == 201
    task_url = created.headers["location"]
    assert (await jwt_client.get(task_url, headers=_bearer(token))).status_code == 200
    listed = await jwt_client.get("/users/alice/tasks", headers=_bearer(token))
    assert listed.status_code == 200
    assert len(listed.json()) == 1


async def test_another_users_path_is_403(jwt_client: httpx.AsyncClient) -> None:
    response = await _create(jwt_client, ED25519.sign(claims("alice")), user="bob")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    listed = await jwt_client.get(
        "/users/bob/tasks", headers=_bearer(ED25519.sign(claims("alice")))
    )
    assert listed.status_code == 403


async def test_missing_token_is_401_with_a_bare_challenge(jwt_client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic YWxpY2U6cHc="}, {"Authorization": "Bearer "}):
        response = await jwt_client.get("/users/alice/tasks", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == CHALLENGE
        assert response.json() == {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "A valid bearer token is required.",
        }


def _with_header(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.{signature}"


def _unsigned(payload: dict[str, Any]) -> str:
    return _with_header({"alg": "none", "typ": "JWT"}, payload)


def _hs_signed_with_public_key() -> str:
    pem = RS256.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"rsa-1"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = hmac.new(pem, header + b"." + body, hashlib.sha256).digest()
    return b".".join([header, body, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()


now = int(time.time())
REJECTED = {
    "malformed": "not.a.jwt",
    "garbage": "abc",
    "expired": ED25519.sign(claims(exp=now - 3600)),
    "expired_beyond_leeway": ED25519.sign(claims(exp=now - 61)),
    "not_yet_valid": ED25519.sign(claims(nbf=now + 3600)),
    "no_exp": ED25519.sign({k: v for k, v in claims().items() if k != "exp"}),
    "no_sub": ED25519.sign({k: v for k, v in claims().items() if k != "sub"}),
    "bad_signature": SigningKey("ed-1", "EdDSA", SigningKey.generate("x", "EdDSA").private).sign(
        claims()
    ),
    "wrong_issuer": ED25519.sign(claims(iss="http://evil.example")),
    "wrong_audience": ED25519.sign(claims(aud="some-other-api")),
    "no_issuer": ED25519.sign({k: v for k, v in claims().items() if k != "iss"}),
    "no_audience": ED25519.sign({k: v for k, v in claims().items() if k != "aud"}),
    "alg_none": _unsigned(claims()),
    "hs_rs_confusion": _hs_signed_with_public_key(),
    "unknown_kid": SigningKey.generate("nobody", "EdDSA").sign(claims()),
    "alg_not_of_key": SigningKey("ed-1", "RS256", RS256.private).sign(claims()),
}


@pytest.mark.parametrize("token", REJECTED.values(), ids=REJECTED.keys())
async def test_invalid_tokens_are_401_and_never_logged(
    jwt_client: httpx.AsyncClient, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await _create(jwt_client, token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID
    assert response.json()["detail"] == "A valid bearer token is required."
    assert token not in caplog.text
    rejections = [record for record in caplog.records if record.name == "app.http.auth"]
    assert rejections
    assert all(record.levelno == logging.DEBUG for record in rejections)
    listed = await jwt_client.get("/users/alice/tasks", headers=_bearer(ED25519.sign(claims())))
    assert listed.json() == []


async def test_leeway_accepts_a_just_expired_token(jwt_client: httpx.AsyncClient) -> None:
    token = ED25519.sign(claims(exp=int(time.time()) - 5))
    assert (await _create(jwt_client, token)).status_code == 201


async def test_open_endpoints_need_no_token(jwt_client: httpx.AsyncClient) -> None:
    for path in ("/health", "/ready", "/docs", "/openapi.yaml", "/openapi.json"):
        assert (await jwt_client.get(path)).status_code == 200, path


async def test_the_email_claim_fills_the_new_user_row(
    jwt_client: httpx.AsyncClient, database_url: str
) -> None:
    token = ED25519.sign(claims("carol", email="carol@example.com"))
    assert (await _create(jwt_client, token, user="carol")).status_code == 201
    later = ED25519.sign(claims("carol", email="changed@example.com"))
    assert (await _create(jwt_client, later, user="carol")).status_code == 201
    async with connect(database_url) as connection:
        email = await connection.fetchval("SELECT email FROM users WHERE id = 'carol'")
    assert email == "carol@example.com"


async def test_hs256_with_a_shared_secret(hs_client: httpx.AsyncClient) -> None:
    good = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert (await _create(hs_client, good)).status_code == 201
    wrong_secret = jwt.encode(
        claims(), "another-secret-of-at-least-thirty-two-b", algorithm="HS256"
    )
    assert (await _create(hs_client, wrong_secret)).status_code == 401
    asymmetric = ED25519.sign(claims())
    assert (await _create(hs_client, asymmetric)).status_code == 401


async def test_waived_issuer_and_audience_accept_any(jwks: JWKSServer, database_url: str) -> None:
    settings = Settings(
        auth_mode="jwt",
        jwks_url=jwks.url,
        jwt_verify_issuer=False,
        jwt_verify_audience=False,
        _env_file=None,
    )
    await truncate(database_url)
    async with serving(database_url, settings) as client:
        other = claims(iss="http://other.example", aud="another-api")
        bare = {k: v for k, v in claims().items() if k not in ("iss", "aud")}
        for payload in (other, bare):
            assert (await _create(client, ED25519.sign(payload))).status_code == 201
        expired = ED25519.sign(claims(exp=int(time.time()) - 3600))
        assert (await _create(client, expired)).status_code == 401


async def test_the_issuer_is_checked_when_only_the_audience_is_waived(
    jwks: JWKSServer, database_url: str
) -> None:
    settings = Settings(
        auth_mode="jwt",
        jwks_url=jwks.url,
        jwt_issuer=ISSUER,
        jwt_verify_audience=False,
        _env_file=None,
    )
    await truncate(database_url)
    async with serving(database_url, settings) as client:
        assert (await _create(client, ED25519.sign(claims(aud="any-api")))).status_code == 201
        wrong_issuer = ED25519.sign(claims(iss="http://other.example"))
        assert (await _create(client, wrong_issuer)).status_code == 401
        no_issuer = ED25519.sign({k: v for k, v in claims().items() if k != "iss"})
        assert (await _create(client, no_issuer)).status_code == 401


async def test_a_rejection_is_logged_at_debug_level_and_cut_short(
    jwt_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The reason may quote the token's header, which the caller writes: a long or multi-line
    one makes one short line."""
    caplog.set_level(logging.DEBUG, logger="app.http.auth")
    algorithm = "X" * 1000 + "\nCRITICAL app forged line"
    token = _with_header({"alg": algorithm, "kid": "ed-1"}, claims())
    response = await _create(jwt_client, token)
    assert response.status_code == 401
    [record] = [record for record in caplog.records if record.name == "app.http.auth"]
    assert record.levelno == logging.DEBUG
    message = record.getMessage()
    assert message.startswith("token rejected: InvalidAlgorithmError: algorithm 'XXXX")
    assert len(message) <= len("token rejected: ") + MAX_REASON_LENGTH
    assert "\n" not in message
    assert "forged" not in message


def test_every_rejection_holds_against_the_running_server(
    jwks: JWKSServer, database_url: str
) -> None:
    env = {
        "AUTH_MODE": "jwt",
        "JWKS_URL": jwks.url,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "DATABASE_URL": database_url,
    }
    port = free_port()
    with running(SERVICE, env, port, quiet=True):
        base = f"http://127.0.0.1:{port}/users/alice/tasks"
        valid = ED25519.sign(claims("alice"))
        created = httpx.post(base, json={"title": "x"}, headers=_bearer(valid))
        assert created.status_code == 201
        assert httpx.get(base, headers=_bearer(ED25519.sign(claims("bob")))).status_code == 403
        missing = httpx.get(base)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == CHALLENGE
        for name, token in REJECTED.items():
            response = httpx.get(base, headers=_bearer(token))
            assert response.status_code == 401, name
            assert response.headers["www-authenticate"] == INVALID, name
            assert response.headers["content-type"] == "application/problem+json", name
