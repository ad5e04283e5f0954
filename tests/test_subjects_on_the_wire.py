"""User ids on the wire, against the server as deployed (uvicorn with httptools, jwt mode), each
path sent byte for byte as written here (http.client neither encodes nor normalises it).

uvicorn decodes the path before routing: `%7C` reaches the operation as `|`, as does a `|` sent as
it is (fetch leaves it so, and orval's clients do not encode path parameters). By then `%2F` is a
`/` like any other, so an id holding one is refused by routing (404: no operation has a path
there); every other id outside the contract's pattern reaches the operation and is refused there
with a 422 naming `user_id`, even with a valid token for that very subject. A `.` or `..` sent as
it is, too: the server does not resolve dot segments (a client that does never sends them)."""

import asyncio
import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import jwt
import pytest

from tests.conftest import LINK, truncate
from tests.support.jwks import AUDIENCE, ISSUER, claims
from tests.support.servers import SERVICE, free_port, running

SECRET = "a-shared-secret-of-at-least-thirty-two-bytes"


@pytest.fixture(scope="module")
def port(database_url: str) -> Iterator[int]:
    env = {
        "AUTH_MODE": "jwt",
        "JWT_SECRET": SECRET,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "DATABASE_URL": database_url,
    }
    chosen = free_port()
    with running(SERVICE, env, chosen, quiet=True):
        yield chosen


def send(
    port: int, method: str, path: str, subject: str, body: object = None
) -> tuple[int, dict[str, str], Any]:
    """One request for `subject`'s token, with `path` on the wire as it is."""
    token = jwt.encode(claims(subject), SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        content = response.read()
        answer = {name.lower(): value for name, value in response.getheaders()}
        return response.status, answer, json.loads(content) if content else None
    finally:
        connection.close()


SPELLINGS = {
    "auth0|5f7c8ec7c33c6c004bbafe82": (
        "auth0|5f7c8ec7c33c6c004bbafe82",
        "auth0%7C5f7c8ec7c33c6c004bbafe82",
        "auth0%7c5f7c8ec7c33c6c004bbafe82",
    ),
    "someone@example.com": ("someone@example.com", "someone%40example.com"),
    "urn:tenant:42": ("urn:tenant:42", "urn%3Atenant%3A42", "urn:tenant%3A42"),
}


@pytest.mark.parametrize("subject", SPELLINGS)
def test_every_spelling_of_a_subject_reaches_its_tasks(
    port: int, database_url: str, subject: str
) -> None:
    asyncio.run(truncate(database_url))
    spellings = SPELLINGS[subject]
    locations = []
    for spelling in spellings:
        path = f"/users/{spelling}/tasks"
        status, headers, task = send(port, "POST", path, subject, {"title": "x"})
        assert status == 201, (spelling, task)
        assert task["user_id"] == subject
        locations.append(headers["location"])
    # Each task's URL spells the id one way, every character but letters, digits and `_-.` encoded.
    encoded = quote(subject, safe="")
    assert all(location.startswith(f"/users/{encoded}/tasks/") for location in locations)
    for spelling in spellings:
        status, headers, page = send(port, "GET", f"/users/{spelling}/tasks?limit=1", subject)
        assert status == 200
        assert page[0]["user_id"] == subject
        pages = [page]
        link = headers.get("link")
        while link:
            match = LINK.match(link)
            assert match is not None
            status, headers, page = send(port, "GET", match.group("url"), subject)
            assert status == 200
            pages.append(page)
            link = headers.get("link")
        assert len(pages) == len(spellings)
    for location in locations:
        status, _, task = send(port, "GET", location, subject)
        assert status == 200
        assert task["user_id"] == subject


REFUSED = {
    # as sent: the status, for a token whose subject is the id the server decodes
    ".": 422,
    "..": 422,
    "%2E": 422,
    "%2E%2E": 422,
    "a/b": 404,
    "a%2Fb": 404,
    "a%20b": 422,
    "a%3Fb": 422,
    "a%23b": 422,
    "a%25b": 422,
    "a%b": 422,
    "%00": 422,
    "a%09b": 422,
    "a%0Ab": 422,
    "a%0D%0Ab": 422,
    "%1F": 422,
    "%7F": 422,
    "%C3%A9": 422,
    "x" * 256: 422,
}


@pytest.mark.parametrize("sent", REFUSED, ids=lambda sent: sent[:12])
def test_an_id_outside_the_contract_is_refused(port: int, sent: str) -> None:
    for method, body in (("GET", None), ("POST", {"title": "x"})):
        status, headers, problem = send(port, method, f"/users/{sent}/tasks", unquote(sent), body)
        assert status == REFUSED[sent], (method, sent, problem)
        assert headers["content-type"] == "application/problem+json"
        if status == 422:
            fields = {(error["location"], error["field"]) for error in problem["errors"]}
            assert fields == {("path", "user_id")}
