"""The auth server's keys kept current (app/http/keys.py), with real signed tokens and a real JWKS
server: rotation, withdrawal, an auth server that fails or is down at start."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from app.config import Settings
from app.http.keys import (
    DEFAULT_REFRESH,
    LONGEST_REFRESH,
    ON_DEMAND_RETRY,
    refresh_interval,
)
from tests.conftest import serving, truncate
from tests.support.jwks import (
    AUDIENCE,
    ISSUER,
    JWKSServer,
    SigningKey,
    claims,
    jwks_url,
    serve_jwks,
)
from tests.support.servers import free_port

FETCHES_WITHIN = 30.0  # seconds a test waits for fetches it expects before it fails


def _settings(url: str, cooldown: float = 60) -> Settings:
    return Settings(
        auth_mode="jwt",
        jwks_url=url,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks_refresh_cooldown=cooldown,
        _env_file=None,
    )


@asynccontextmanager
async def _service(database_url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await truncate(database_url)
    async with serving(database_url, settings) as client:
        yield client


async def _create(client: httpx.AsyncClient, key: SigningKey) -> httpx.Response:
    token = key.sign(claims("alice"))
    return await client.post(
        "/users/alice/tasks", json={"title": "x"}, headers={"Authorization": f"Bearer {token}"}
    )


async def _fetched(jwks: JWKSServer, count: int) -> None:
    """Wait until the JWKS server has been asked `count` times in all."""
    deadline = time.monotonic() + FETCHES_WITHIN
    while jwks.requests < count:
        assert time.monotonic() < deadline, f"{jwks.requests} fetches, expected {count}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("cache_control", "interval"),
    [
        (None, DEFAULT_REFRESH),
        ("public, max-age=600", 600),
        ('max-age="900", must-revalidate', 900),
        ("no-cache", 60),  # as often as the cool-down allows
        ("no-store, max-age=600", 60),
        ("s-maxage=10", DEFAULT_REFRESH),
        ("max-age=0", 60),  # never more often than the cool-down
        ("max-age=86400", LONGEST_REFRESH),
    ],
)
def test_the_refresh_interval_follows_max_age_within_bounds(
    cache_control: str | None, interval: float
) -> None:
    assert refresh_interval(cache_control, cooldown=60) == interval


async def test_requests_that_arrive_together_share_one_fetch(database_url: str) -> None:
    key = SigningKey.generate("shared", "EdDSA")
    with serve_jwks(key) as jwks:
        async with _service(database_url, _settings(jwks.url)) as client:
            # They arrive with the background task's first fetch; all of them wait for one.
            responses = await asyncio.gather(*(_create(client, key) for _ in range(10)))
            assert [response.status_code for response in responses] == [201] * 10
            assert jwks.requests == 1


async def test_a_withdrawn_key_stops_working_after_the_background_fetch(database_url: str) -> None:
    kept = SigningKey.generate("kept", "EdDSA")
    withdrawn = SigningKey.generate("withdrawn", "ES256")
    with serve_jwks(kept, withdrawn, max_age=1) as jwks:
        async with _service(database_url, _settings(jwks.url, cooldown=1)) as client:
            assert (await _create(client, withdrawn)).status_code == 201
            jwks.withdraw(withdrawn)
            # Nothing asks for the keys now but the background task. The first fetch counted
            # from here was answered without the key; by the time the next one arrives, its
            # answer has replaced the keys.
            await _fetched(jwks, jwks.requests + 2)
            assert (await _create(client, withdrawn)).status_code == 401
            assert (await _create(client, kept)).status_code == 201


async def test_a_rotated_key_is_accepted_after_the_cool_down(database_url: str) -> None:
    first = SigningKey.generate("first", "EdDSA")
    with serve_jwks(first) as jwks:
        async with _service(database_url, _settings(jwks.url, cooldown=1)) as client:
            assert (await _create(client, first)).status_code == 201
            fetches = jwks.requests
            rotated = SigningKey.generate("rotated", "EdDSA")
            jwks.publish(rotated)
            for number in range(5):  # within the cool-down: made-up kids do not hammer it
                made_up = SigningKey.generate(f"made-up-{number}", "EdDSA")
                assert (await _create(client, made_up)).status_code == 401
            assert jwks.requests - fetches <= 1
            await asyncio.sleep(1.1)
            assert (await _create(client, rotated)).status_code == 201


async def test_a_failing_auth_server_leaves_the_known_keys_working(database_url: str) -> None:
    key = SigningKey.generate("known", "EdDSA")
    with serve_jwks(key, max_age=1) as jwks:
        async with _service(database_url, _settings(jwks.url, cooldown=1)) as client:
            assert (await _create(client, key)).status_code == 201
            jwks.failing = True
            await _fetched(jwks, jwks.requests + 2)  # failed fetches, in the background
            assert (await _create(client, key)).status_code == 201
            unknown = await _create(client, SigningKey.generate("unknown", "EdDSA"))
            assert unknown.status_code == 401  # not 503: the keys are known, this one is not


async def test_keys_never_fetched_are_a_503_until_the_auth_server_answers(
    database_url: str,
) -> None:
    """The auth server is down when the service starts: a token cannot be checked yet, and works
    once the auth server is back, without waiting for the cool-down (60 s here)."""
    port = free_port()
    key = SigningKey.generate("late", "EdDSA")
    async with _service(database_url, _settings(jwks_url(port))) as client:
        for _ in range(3):
            response = await _create(client, key)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "2"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == 503
        malformed = await client.get(
            "/users/alice/tasks", headers={"Authorization": "Bearer not-a-token"}
        )
        assert malformed.status_code == 401  # no key makes it valid
        assert (await client.get("/users/alice/tasks")).status_code == 401
        with serve_jwks(key, port=port):
            await asyncio.sleep(ON_DEMAND_RETRY)  # every failed try was before this
            assert (await _create(client, key)).status_code == 201
