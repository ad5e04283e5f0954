"""Rate limits: budgets per user and per client address, the RateLimit header fields, 429, the
bound on a user's requests in flight, and counters shared through a real Redis server."""

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.config import Settings
from tests.conftest import serving, truncate
from tests.support.databases import connect, recreate_database
from tests.support.jwks import AUDIENCE, ISSUER
from tests.support.redis import redis_server
from tests.support.servers import SERVICE, database_server_url, free_port, running

SECRET = "a-shared-secret-of-at-least-thirty-two-bytes"
RATE_LIMIT = re.compile(r'^"(?P<name>reads|writes)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "rate_limit_reads": "5/minute",
        "rate_limit_writes": "3/minute",
        "max_requests_in_flight_per_user": 100,
        # A request is one unit, however long it takes on a busy machine: these tests count
        # requests. Time's cost has a test of its own.
        "rate_limit_cost_ms": 0,
        **overrides,
    }
    return Settings(**values, _env_file=None)


@pytest.fixture
async def limited(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await truncate(database_url)
    async with serving(database_url, _settings()) as client:
        yield client


def _left(response: httpx.Response) -> tuple[str, int]:
    match = RATE_LIMIT.match(response.headers["ratelimit"])
    assert match is not None, response.headers["ratelimit"]
    return match["name"], int(match["r"])


async def test_every_answer_carries_the_budget_it_spent(limited: httpx.AsyncClient) -> None:
    created = await limited.post("/users/alice/tasks", json={"title": "Buy milk"})
    assert created.status_code == 201
    assert created.headers["ratelimit-policy"] == '"writes";q=3;w=60'
    assert _left(created) == ("writes", 2)
    listed = await limited.get("/users/alice/tasks")
    assert listed.headers["ratelimit-policy"] == '"reads";q=5;w=60'
    assert _left(listed) == ("reads", 4)
    missing = await limited.get("/users/alice/tasks/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert _left(missing) == ("reads", 3)
    health = await limited.get("/health")
    assert "ratelimit" not in health.headers


async def test_over_budget_is_429_with_retry_after(limited: httpx.AsyncClient) -> None:
    statuses = [
        (await limited.post("/users/alice/tasks", json={"title": f"t{n}"})).status_code
        for n in range(3)
    ]
    assert statuses == [201, 201, 201]
    refused = await limited.post("/users/alice/tasks", json={"title": "one too many"})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    assert "writes budget" in refused.json()["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert _left(refused) == ("writes", 0)
    # Nothing was written; reads have a budget of their own, and so has every other user.
    listed = await limited.get("/users/alice/tasks")
    assert listed.status_code == 200
    assert [task["title"] for task in listed.json()] == ["t0", "t1", "t2"]
    assert (await limited.post("/users/bob/tasks", json={"title": "x"})).status_code == 201


async def test_off_sends_no_fields(database_url: str) -> None:
    async with serving(database_url, _settings(rate_limit_writes="off")) as client:
        for _ in range(5):
            created = await client.post("/users/alice/tasks", json={"title": "x"})
            assert created.status_code == 201
            assert "ratelimit" not in created.headers
        assert "ratelimit" in (await client.get("/users/alice/tasks")).headers


async def test_invalid_credentials_spend_the_address_budget(database_url: str) -> None:
    """A stranger's bad tokens cannot spend a user's budget; they spend their address's."""
    settings = _settings(
        auth_mode="jwt",
        jwt_secret=SECRET,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        rate_limit_reads="2/minute",
    )
    claims = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": 2**31 - 1}
    alice = jwt.encode(claims, SECRET, algorithm="HS256")
    async with serving(database_url, settings) as client:
        for expected in (401, 401, 429):
            forged = await client.get(
                "/users/alice/tasks", headers={"Authorization": "Bearer forged.token.value"}
            )
            assert forged.status_code == expected
        answered = await client.get(
            "/users/alice/tasks", headers={"Authorization": f"Bearer {alice}"}
        )
        assert answered.status_code == 200
        assert _left(answered) == ("reads", 1)


async def test_a_user_has_a_bounded_number_of_requests_in_flight(database_url: str) -> None:
    """Three writes of one user while their row is locked: two wait, the third is refused at
    once, and another user is served meanwhile."""
    await truncate(database_url)
    settings = _settings(rate_limit_writes="off", max_requests_in_flight_per_user=2)
    async with serving(database_url, settings) as client:
        task = (await client.post("/users/alice/tasks", json={"title": "x"})).json()
        url = f"/users/alice/tasks/{task['id']}/complete"
        async with connect(database_url) as holder:
            locking = holder.transaction()
            await locking.start()
            await holder.execute("SELECT FROM users WHERE id = 'alice' FOR UPDATE")
            waiting = [asyncio.create_task(client.patch(url)) for _ in range(2)]
            await _until_waiting(database_url, 1)
            refused = await client.patch(url)
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            assert "At most 2 requests" in refused.json()["detail"]
            assert (await client.get("/users/bob/tasks")).status_code == 200
            await locking.rollback()
        assert [(await answer).status_code for answer in waiting] == [200, 200]
        assert (await client.patch(url)).status_code == 200


async def _until_waiting(database_url: str, count: int) -> None:
    async with connect(database_url) as watcher:
        for _ in range(200):
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("no request waited on the lock")


def test_two_instances_share_one_budget_through_redis(tmp_path: Path) -> None:
    """Two instances of the service over one database and one Redis: one budget."""
    database_url = asyncio.run(recreate_database(database_server_url(), "tasks_rate_limits"))
    ports = free_port(), free_port()
    with redis_server(tmp_path) as redis:
        env = {
            "DATABASE_URL": database_url,
            "MIGRATE_ON_START": "true",
            "RATE_LIMIT_WRITES": "4/minute",
            "RATE_LIMIT_COST_MS": "0",
            "RATE_LIMIT_STORAGE_URL": redis.url,
        }
        with (
            running(SERVICE, env, ports[0], quiet=True),
            running(SERVICE, env, ports[1], quiet=True),
        ):
            answers = [
                httpx.post(f"http://127.0.0.1:{port}/users/alice/tasks", json={"title": "x"})
                for port in (*ports, *ports, *ports)
            ]
    assert [answer.status_code for answer in answers] == [201, 201, 201, 201, 429, 429]
    assert [_left(answer)[1] for answer in answers] == [3, 2, 1, 0, 0, 0]


async def test_requests_go_through_while_redis_is_down(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail open: while Redis is unreachable requests are served without the fields, one line is
    logged for the outage and each request let through is counted; then the budget is back."""
    await truncate(database_url)
    caplog.set_level(logging.WARNING, logger="app.http.rate_limits")
    with redis_server(tmp_path) as redis:
        settings = _settings(rate_limit_writes="100/minute", rate_limit_storage_url=redis.url)
        async with serving(database_url, settings) as client:
            assert (
                "ratelimit"
                in (await client.post("/users/alice/tasks", json={"title": "x"})).headers
            )
            before = await _let_through(client)
            redis.stop()
            for _ in range(3):
                created = await client.post("/users/alice/tasks", json={"title": "x"})
                assert created.status_code == 201
                assert "ratelimit" not in created.headers
            assert await _let_through(client) == before + 3
            redis.start()
            await asyncio.sleep(1.1)  # the limiter tries Redis again after a second
            back = await client.post("/users/alice/tasks", json={"title": "x"})
            assert back.status_code == 201
            assert _left(back) == ("writes", 99)  # a new Redis: it kept nothing
    outage = [record for record in caplog.records if "unreachable" in record.getMessage()]
    assert len(outage) == 1
    assert any("reachable again" in record.getMessage() for record in caplog.records)


async def _let_through(client: httpx.AsyncClient) -> float:
    metrics = (await client.get("/metrics")).text
    match = re.search(r"^rate_limit_storage_failures_total (\S+)$", metrics, re.MULTILINE)
    assert match is not None
    return float(match[1])


async def test_browsers_may_read_the_fields(database_url: str) -> None:
    origin = "https://app.example"
    settings = _settings(cors_origins=[origin])
    async with serving(database_url, settings) as client:
        answer = await client.get("/users/alice/tasks", headers={"Origin": origin})
    exposed = {
        name.strip().lower() for name in answer.headers["access-control-expose-headers"].split(",")
    }
    assert {"ratelimit", "ratelimit-policy", "retry-after"} <= exposed
    assert answer.headers["ratelimit-policy"] == '"reads";q=5;w=60'


async def test_concurrent_requests_of_one_user_all_count_in_flight(
    database_url: str, tmp_path: Path
) -> None:
    """With Redis, spending a budget waits on the network: requests of one user overlap there,
    and each is counted in and out of flight exactly once."""
    with redis_server(tmp_path) as redis:
        settings = _settings(rate_limit_reads="1000/minute", rate_limit_storage_url=redis.url)
        async with serving(database_url, settings) as client:
            answers = await asyncio.gather(*(client.get("/users/alice/tasks") for _ in range(30)))
            assert [answer.status_code for answer in answers] == [200] * 30
            # Each reads what is left after its own spend, and maybe after others' since.
            left = [_left(answer)[1] for answer in answers]
            assert min(left) == 970
            assert max(left) <= 999
            assert (await client.get("/users/alice/tasks")).status_code == 200


async def test_a_slow_request_costs_a_unit_for_every_25_ms_beyond_the_first(
    database_url: str,
) -> None:
    """A toggle that waits 300 ms behind a lock on its owner's row costs its unit and 11 or more
    after it has been answered; a quick one costs one."""
    await truncate(database_url)
    settings = _settings(rate_limit_writes="100/minute", rate_limit_cost_ms=25)
    async with serving(database_url, settings) as client:
        task = (await client.post("/users/alice/tasks", json={"title": "x"})).json()
        url = f"/users/alice/tasks/{task['id']}/complete"
        assert _left(await client.patch(url)) == ("writes", 98)
        async with connect(database_url) as holder:
            locking = holder.transaction()
            await locking.start()
            await holder.execute("SELECT FROM users WHERE id = 'alice' FOR UPDATE")
            waiting = asyncio.create_task(client.patch(url))
            await _until_waiting(database_url, 1)
            await asyncio.sleep(0.3)
            await locking.rollback()
        slow = await waiting
        assert slow.status_code == 200
        assert _left(slow) == ("writes", 97)  # what was left when it began
        after = await client.patch(url)
        assert _left(after)[1] <= 97 - 11 - 1
