"""User ids as identity providers issue them (Auth0's `provider|id`, an email address, a URN), in
jwt mode with real signed tokens: every operation works for them, and every URL the service gives
(`Location`, `Link`, a replayed `Location`) names the user percent-encoded and is followed as it
is. tests/test_subjects_on_the_wire.py sends the same ids to the server as deployed."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
import yaml

from app.config import Settings
from tests.conftest import LINK, create_task, serving, truncate
from tests.support.databases import connect
from tests.support.jwks import AUDIENCE, ISSUER, claims

SECRET = "a-shared-secret-of-at-least-thirty-two-bytes"
SUBJECTS = (
    "auth0|5f7c8ec7c33c6c004bbafe82",
    "google-oauth2|104356789012345678901",
    "someone@example.com",
    "urn:tenant:42",
)
HEADERS = yaml.safe_load(
    (Path(__file__).resolve().parent.parent / "openapi" / "task-operations.yaml").read_text()
)["components"]["headers"]


@pytest.fixture
async def jwt_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await truncate(database_url)
    settings = Settings(
        auth_mode="jwt", jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, _env_file=None
    )
    async with serving(database_url, settings) as client:
        yield client


def bearer(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims(subject), SECRET, algorithm='HS256')}"}


def tasks_path(subject: str) -> str:
    """The user's tasks, as a client's encodeURIComponent spells the id."""
    return f"/users/{quote(subject, safe='')}/tasks"


def next_page(response: httpx.Response) -> str | None:
    link = response.headers.get("link")
    return LINK.match(link).group("url") if link else None  # type: ignore[union-attr]


@pytest.mark.parametrize("subject", SUBJECTS)
async def test_a_provider_subject_uses_every_operation(
    jwt_client: httpx.AsyncClient, subject: str
) -> None:
    client, headers, path = jwt_client, bearer(subject), tasks_path(subject)
    created = await client.post(path, json={"title": "Buy milk"}, headers=headers)
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["user_id"] == subject
    location = created.headers["location"]
    assert location == f"{path}/{task['id']}"
    fetched = await client.get(location, headers=headers)
    assert fetched.request.url.raw_path == location.encode()  # sent as given
    assert fetched.json() == task

    for title in ("Walk the dog", "Water the plants"):
        more = await client.post(path, json={"title": title}, headers=headers)
        assert more.status_code == 201
    first = await client.get(path, params={"limit": 2, "order": "newest"}, headers=headers)
    url = next_page(first)
    assert url is not None
    assert url.startswith(f"{path}?")
    second = await client.get(url, headers=headers)
    assert second.request.url.raw_path == url.encode()
    assert second.status_code == 200
    assert next_page(second) is None
    titles = [listed["title"] for listed in first.json() + second.json()]
    assert titles == ["Water the plants", "Walk the dog", "Buy milk"]

    patched = await client.patch(location, json={"title": "Buy oat milk"}, headers=headers)
    assert patched.json()["title"] == "Buy oat milk"
    toggled = await client.patch(f"{location}/complete", headers=headers)
    assert toggled.json()["is_completed"] is True
    counts = await client.get(f"{path}/counts", headers=headers)
    assert counts.json() == {"total": 3, "open": 2, "completed": 1}
    assert (await client.delete(location, headers=headers)).status_code == 204
    assert (await client.get(location, headers=headers)).status_code == 404
    completed_all = await client.patch(path, json={"is_completed": True}, headers=headers)
    assert completed_all.json() == {"updated": 2}
    cleared = await client.delete(path, params={"completed": "true"}, headers=headers)
    assert cleared.json() == {"deleted": 2}


@pytest.mark.parametrize("subject", SUBJECTS)
async def test_a_replayed_create_gives_the_same_encoded_location(
    jwt_client: httpx.AsyncClient, subject: str
) -> None:
    headers = {**bearer(subject), "Idempotency-Key": "6f1c8a52-0d4e-4c5b-9f0e-2b7a3c9d1e84"}
    first = await jwt_client.post(tasks_path(subject), json={"title": "x"}, headers=headers)
    again = await jwt_client.post(tasks_path(subject), json={"title": "x"}, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert first.headers["location"] == f"{tasks_path(subject)}/{first.json()['id']}"
    fetched = await jwt_client.get(again.headers["location"], headers=bearer(subject))
    assert fetched.json()["id"] == first.json()["id"]


async def test_a_token_acts_for_its_subject_alone(jwt_client: httpx.AsyncClient) -> None:
    """Subjects that differ by a character the URL encodes are different users."""
    auth0 = "auth0|5f7c8ec7c33c6c004bbafe82"
    for other in ("auth0|5f7c8ec7c33c6c004bbafe83", "auth0", "auth0:5f7c8ec7c33c6c004bbafe82"):
        response = await jwt_client.get(tasks_path(other), headers=bearer(auth0))
        assert response.status_code == 403, other


def _path_errors(response: httpx.Response) -> list[str]:
    """The messages of a 422 that refuses the path's user_id, and nothing else."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert {(error["location"], error["field"]) for error in errors} == {("path", "user_id")}
    return [error["message"] for error in errors]


async def test_the_longest_subject_and_its_urls_fit_the_contract(
    jwt_client: httpx.AsyncClient,
) -> None:
    """255 characters, each one that the URL encodes: the longest Location and Link there are."""
    subject, search = "|" * 255, "\N{GRINNING FACE}" * 100  # 3 and 12 characters encoded
    headers, path = bearer(subject), tasks_path(subject)
    for _ in range(2):
        created = await jwt_client.post(path, json={"title": search}, headers=headers)
        assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert len(location) == HEADERS["Location"]["schema"]["maxLength"]
    assert (await jwt_client.get(location, headers=headers)).json() == created.json()
    query = {"limit": "1", "order": "newest", "completed": "false", "q": search}
    listed = await jwt_client.get(path, params=query, headers=headers)
    link = listed.headers["link"]
    # With limit=1000, three characters more: the most a Link can hold.
    assert len(link) - len("1") + len("1000") == HEADERS["Link"]["schema"]["maxLength"]
    url = next_page(listed)
    assert url is not None
    following = await jwt_client.get(url, headers=headers)
    assert [task["id"] for task in following.json()] != [task["id"] for task in listed.json()]
    assert len(following.json()) == 1

    too_long = "|" * 256
    refused = await jwt_client.get(tasks_path(too_long), headers=bearer(too_long))
    assert "String should have at most 255 characters" in _path_errors(refused)


async def _until_a_key_is_held(connection: Any) -> None:
    for _ in range(100):
        held = await connection.fetchval(
            """SELECT count(*) FROM pg_locks JOIN pg_database ON pg_database.oid = database
               WHERE locktype = 'advisory' AND granted AND datname = current_database()"""
        )
        if held:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no keyed create took its key's lock")


async def test_keys_of_users_whose_ids_spell_alike_are_not_one_key(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """User `a:b` with the key `c` and user `a` with the key `b:c`: while a create of the first
    waits holding its key's lock, the second is not taken for a repeat of it (409)."""
    await create_task(client, "a:b")
    async with connect(database_url) as holder, connect(database_url) as watcher:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT FROM users WHERE id = 'a:b' FOR NO KEY UPDATE")
        waiting = asyncio.create_task(
            client.post("/users/a:b/tasks", json={"title": "x"}, headers={"Idempotency-Key": "c"})
        )
        try:
            await _until_a_key_is_held(watcher)
            other = await client.post(
                "/users/a/tasks", json={"title": "x"}, headers={"Idempotency-Key": "b:c"}
            )
            assert other.status_code == 201, other.text
            assert not waiting.done()
        finally:
            await transaction.rollback()
    assert (await waiting).status_code == 201
