"""AUTH_MODE=jwt with real signed tokens: JWKS (EdDSA, ES256, RS256) and HS256."""

import asyncio
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
    settings = Settings(auth_mode="jwt", jwt_secret=SECRET, _env_file=None)
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


def _unsigned(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


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
    assert any(record.name == "app.http.auth" for record in caplog.records)
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


async def test_a_rotated_key_is_accepted_after_the_cool_down(
    jwt_client: httpx.AsyncClient, jwks: JWKSServer
) -> None:
    assert (await _create(jwt_client, ED25519.sign(claims()))).status_code == 201
    fetches = jwks.requests
    rotated = SigningKey.generate(f"ed-rotated-{time.monotonic_ns()}", "EdDSA")
    jwks.publish(rotated)
    token = rotated.sign(claims())
    for _ in range(5):  # within the cool-down: garbage kids cannot hammer the auth server
        await _create(jwt_client, SigningKey.generate("garbage", "EdDSA").sign(claims()))
    assert jwks.requests - fetches <= 1
    await asyncio.sleep(1.1)
    assert (await _create(jwt_client, token)).status_code == 201


async def test_hs256_with_a_shared_secret(hs_client: httpx.AsyncClient) -> None:
    good = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert (await _create(hs_client, good)).status_code == 201
    wrong_secret = jwt.encode(
        claims(), "another-secret-of-at-least-thirty-two-b", algorithm="HS256"
    )
    assert (await _create(hs_client, wrong_secret)).status_code == 401
    asymmetric = ED25519.sign(claims())
    assert (await _create(hs_client, asymmetric)).status_code == 401


def test_configuration_refuses_mixed_algorithm_families() -> None:
    with pytest.raises(ValueError, match="cannot be used with JWKS_URL"):
        Settings(auth_mode="jwt", jwks_url="http://x/jwks", jwt_algorithms="RS256,HS256")
    with pytest.raises(ValueError, match="cannot be used with JWT_SECRET"):
        Settings(auth_mode="jwt", jwt_secret="s", jwt_algorithms="RS256")
    with pytest.raises(ValueError, match="exactly one"):
        Settings(auth_mode="jwt")
    with pytest.raises(ValueError, match="less than or equal to 60"):
        Settings(jwt_leeway=61)


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
