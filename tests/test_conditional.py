"""Entity tags and conditional requests (RFC 9110 §13): ETag, If-None-Match, If-Match, 412, 428."""

import asyncio
import contextlib
import re
from collections import Counter
from typing import Any
from uuid import uuid4

import httpx
import pytest

from app.config import Settings
from tests.conftest import serving
from tests.support.databases import connect

STRONG = re.compile(r'^"[0-9]+"$')
WRITES = [
    ("PUT", "", {"title": "Replaced"}),
    ("PATCH", "", {"title": "Renamed"}),
    ("PATCH", "/complete", None),
    ("DELETE", "", None),
]


async def _created(client: httpx.AsyncClient) -> tuple[str, str]:
    response = await client.post("/users/alice/tasks", json={"title": "Buy milk"})
    assert response.status_code == 201
    return response.headers["location"], response.headers["etag"]


async def test_every_answer_with_one_task_has_a_strong_etag(client: httpx.AsyncClient) -> None:
    url, created = await _created(client)
    assert STRONG.match(created)
    seen = [created]
    for method, suffix, body in WRITES[:3]:
        response = await client.request(method, url + suffix, json=body)
        assert response.status_code == 200
        assert STRONG.match(response.headers["etag"])
        fetched = await client.get(url)
        assert fetched.headers["etag"] == response.headers["etag"]  # the write's is the current one
        seen.append(response.headers["etag"])
    assert len(set(seen)) == len(seen)  # every change moved it
    listed = await client.get("/users/alice/tasks")
    assert "etag" not in listed.headers  # a list is not one task


async def test_the_etag_changes_when_the_task_changes_and_only_then(
    client: httpx.AsyncClient,
) -> None:
    url, created = await _created(client)
    assert (await client.get(url)).headers["etag"] == created
    unchanged = await client.patch(url, json={})
    assert unchanged.headers["etag"] == created  # an empty patch changes nothing
    same_values = await client.patch(url, json={"title": "Buy milk"})
    assert same_values.headers["etag"] != created  # updated_at moved: the task changed
    assert same_values.json()["updated_at"] != unchanged.json()["updated_at"]


async def test_if_none_match_answers_304_while_the_task_is_unchanged(
    client: httpx.AsyncClient,
) -> None:
    url, created = await _created(client)
    for header in (created, "*", f"W/{created}", f'"999", {created}', f'"0",W/{created}'):
        response = await client.get(url, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == created
    changed = (await client.patch(url, json={"title": "Renamed"})).headers["etag"]
    stale = await client.get(url, headers={"If-None-Match": created})
    assert stale.status_code == 200
    assert stale.headers["etag"] == changed
    assert stale.json()["title"] == "Renamed"
    missing = await client.get(f"/users/alice/tasks/{uuid4()}", headers={"If-None-Match": "*"})
    assert missing.status_code == 404


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_if_match_with_the_current_etag_writes(
    client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    for header in ("{tag}", "*", '"999", {tag}', '"0",{tag}'):
        url, created = await _created(client)
        response = await client.request(
            method, url + suffix, json=body, headers={"If-Match": header.format(tag=created)}
        )
        assert response.status_code == (204 if method == "DELETE" else 200), (header, response.text)


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_if_match_with_another_etag_is_412_and_changes_nothing(
    client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    url, created = await _created(client)
    moved = await client.patch(url, json={"description": "moved on"})
    current, tag = moved.json(), moved.headers["etag"]
    for header in (created, f"W/{tag}", '"abc"'):  # stale; weak (compared strongly); not ours
        response = await client.request(
            method, url + suffix, json=body, headers={"If-Match": header}
        )
        assert response.status_code == 412, header
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Precondition Failed"
    assert (await client.get(url)).json() == current


@pytest.mark.parametrize(("method", "suffix", "body"), [*WRITES, ("GET", "", None)])
async def test_a_missing_or_foreign_task_is_404_whatever_the_precondition(
    client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    url, created = await _created(client)
    header = "If-None-Match" if method == "GET" else "If-Match"
    for value in (created, '"1"', '"2"', "*"):
        foreign = await client.request(
            method, url.replace("alice", "mallory") + suffix, json=body, headers={header: value}
        )
        missing = await client.request(
            method, f"/users/mallory/tasks/{uuid4()}{suffix}", json=body, headers={header: value}
        )
        assert foreign.status_code == missing.status_code == 404, value
        assert foreign.content == missing.content


@pytest.mark.parametrize(
    "value",
    [
        "3",
        "abc",
        '"unterminated',
        "W/3",
        '"a" "b"',
        '"a",,"b"',
        "**",
        '"a", *',
        'w/"1"',
        "",
        '"1",\n"2"',
        '"\x00"',
        '"caf\xe9"',
        f'"{"1" * 1023}"',
    ],
)
async def test_a_malformed_precondition_is_422_and_changes_nothing(
    client: httpx.AsyncClient, value: str
) -> None:
    url, created = await _created(client)
    task = (await client.get(url)).json()
    for method, suffix, body in [*WRITES, ("GET", "", None)]:
        header = "If-None-Match" if method == "GET" else "If-Match"
        response = await client.request(
            method, url + suffix, json=body, headers=[(header.encode(), value.encode("latin-1"))]
        )
        assert response.status_code == 422, (method, suffix, value)
        assert response.headers["content-type"] == "application/problem+json"
        error = response.json()["errors"][0]
        assert (error["location"], error["field"]) == ("header", header)
    fetched = await client.get(url)
    assert fetched.json() == task
    assert fetched.headers["etag"] == created


async def test_a_precondition_of_1024_characters_is_read(client: httpx.AsyncClient) -> None:
    url, created = await _created(client)
    tags = [created]
    while len(", ".join(tags)) + 11 <= 1024:
        tags.insert(0, f'"9{len(tags):07d}"')  # versions the task never had
    longest = ", ".join(tags)
    assert 1013 < len(longest) <= 1024
    assert (await client.patch(url + "/complete", headers={"If-Match": longest})).status_code == 200
    rest = ", ".join(tags[1:])
    too_long = tags[0] + "," + " " * (1025 - len(tags[0]) - 1 - len(rest)) + rest
    assert len(too_long) == 1025
    response = await client.patch(url + "/complete", headers={"If-Match": too_long})
    assert response.status_code == 422


async def test_require_if_match_refuses_unconditional_writes(database_url: str) -> None:
    settings = Settings(require_if_match=True, _env_file=None)
    async with serving(database_url, settings) as client:
        url, created = await _created(client)
        for method, suffix, body in WRITES:
            refused = await client.request(method, url + suffix, json=body)
            assert refused.status_code == 428, (method, suffix)
            assert refused.json()["title"] == "Precondition Required"
            missing = await client.request(
                method, f"/users/alice/tasks/{uuid4()}{suffix}", json=body
            )
            assert missing.content == refused.content  # a missing task answers the same
        assert (await client.get(url)).headers["etag"] == created  # nothing changed
        assert (await client.patch(url, json={}, headers={"If-Match": created})).status_code == 200
        toggled = await client.patch(url + "/complete", headers={"If-Match": created})
        assert toggled.status_code == 200
        assert (await client.delete(url, headers={"If-Match": "*"})).status_code == 204
        assert (
            await client.get(f"/users/alice/tasks/{uuid4()}")
        ).status_code == 404  # reads: as ever


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_racing_writers_with_one_etag_get_one_success(
    client: httpx.AsyncClient,
    database_url: str,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    # Ten writers in five apps of their own, as ten clients of several workers or replicas are:
    # each app lets writes to one task take turns, so only the database can keep two apps apart.
    async with contextlib.AsyncExitStack() as stack:
        apps = [await stack.enter_async_context(serving(database_url)) for _ in range(5)]
        for _ in range(5):
            url, created = await _created(client)
            responses = await asyncio.gather(
                *(
                    apps[i % len(apps)].request(
                        method, url + suffix, json=body, headers={"If-Match": created}
                    )
                    for i in range(10)
                )
            )
            statuses = Counter(response.status_code for response in responses)
            assert statuses[200] + statuses[204] == 1, statuses
            # After a DELETE commits, a racer that looks afterwards finds no task at all.
            assert set(statuses) <= {200, 204, 412, 404}, statuses
            if method != "DELETE":
                assert statuses[404] == 0, statuses
                async with connect(database_url) as connection:
                    version = await connection.fetchval(
                        "SELECT version FROM tasks WHERE id = $1", url.rsplit("/", 1)[1]
                    )
                assert version == int(created.strip('"')) + 1  # exactly one write happened
