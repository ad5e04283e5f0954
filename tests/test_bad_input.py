"""Bad input gets a problem answer and changes nothing."""

from typing import Any

import httpx
import pytest

from tests.conftest import create_task

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    text = response.text.lower()
    for leak in ("traceback", "select ", "insert ", "asyncpg", "sqlalchemy", 'file "'):
        assert leak not in text
    return body


async def _task_count(client: httpx.AsyncClient, user_id: str = "alice") -> int:
    return len((await client.get(f"/users/{user_id}/tasks")).json())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "\u0000"}, "title"),
        ({"title": "ok\u0000"}, "title"),
        ({"title": "ok", "description": "a\u0000b"}, "description"),
        ({"title": ""}, "title"),
        ({"title": "   \t\n"}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "description": "x" * 1001}, "description"),
        ({"title": 5}, "title"),
        ({"title": "ok", "is_completed": 0}, "is_completed"),
        ({"title": "ok", "is_completed": "true"}, "is_completed"),
        ({"title": "ok", "is_completed": None}, "is_completed"),
        ({"title": "ok", "owner": "bob"}, "owner"),
        ({"title": "ok", "id": "0b9f5a8e-3f4c-4d8a-9a53-2c1d6f0e7b11"}, "id"),
        ({}, "title"),
    ],
)
async def test_invalid_create_is_422_and_stores_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/users/alice/tasks", json=body)
    problem = _assert_problem(response, 422)
    assert field in [error["field"] for error in problem["errors"]]
    assert all(error["location"] == "body" for error in problem["errors"])
    assert await _task_count(client) == 0


async def test_problem_titles_are_rfc_9110s(client: httpx.AsyncClient) -> None:
    invalid = await client.post("/users/alice/tasks", json={"title": ""})
    assert _assert_problem(invalid, 422)["title"] == "Unprocessable Content"
    too_large = await client.post(
        "/users/alice/tasks",
        content=b'{"title": "' + b"x" * (64 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert _assert_problem(too_large, 413)["title"] == "Content Too Large"


async def test_bounds_are_inclusive(client: httpx.AsyncClient) -> None:
    task = await create_task(client, title="x" * 200, description="y" * 1000)
    assert len(task["title"]) == 200
    unicode_title = "é" * 200
    assert (await create_task(client, title=unicode_title))["title"] == unicode_title


async def test_body_that_is_not_an_object_is_422(client: httpx.AsyncClient) -> None:
    for body in (b"[]", b'"title"', b"42", b"null"):
        response = await client.post(
            "/users/alice/tasks", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, body
    assert await _task_count(client) == 0


@pytest.mark.parametrize(
    "body",
    [b"{bad", b'{"title": "x",}', b'{"title": NaN}', b'{"title": "\\ud800"}', b"\xff\xfe"],
)
async def test_malformed_json_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/users/alice/tasks", content=body, headers={"content-type": "application/json"}
    )
    _assert_problem(response, 400)
    assert await _task_count(client) == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/users/alice/tasks", content=b'{"title":"x"}', headers=headers)
    _assert_problem(response, 415)
    assert await _task_count(client) == 0


async def test_json_with_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/users/alice/tasks",
        content=b'{"title":"x"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    body = b'{"title": "' + b"x" * (64 * 1024) + b'"}'
    response = await client.post(
        "/users/alice/tasks", content=body, headers={"content-type": "application/json"}
    )
    _assert_problem(response, 413)
    assert await _task_count(client) == 0


async def test_oversized_streamed_body_is_413_without_reading_it_all(
    client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def chunks() -> Any:
        nonlocal sent
        for _ in range(1000):
            sent += 1
            yield b"x" * 1024

    response = await client.post(
        "/users/alice/tasks", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_problem(response, 413)
    assert sent < 100


async def test_invalid_update_changes_nothing(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    url = f"/users/alice/tasks/{task['id']}"
    for method, body in (
        ("PUT", {"title": "x" * 201}),
        ("PUT", {"title": "ok", "is_completed": 1}),
        ("PATCH", {"title": "\u0000"}),
        ("PATCH", {"unknown": 1}),
    ):
        _assert_problem(await client.request(method, url, json=body), 422)
    assert (await client.get(url)).json() == task


@pytest.mark.parametrize(
    ("url", "field", "location"),
    [
        ("/users/alice/tasks/not-a-uuid", "task_id", "path"),
        ("/users/" + "u" * 256 + "/tasks", "user_id", "path"),
        ("/users/al%20ice/tasks", "user_id", "path"),
        ("/users/alice/tasks?limit=0", "limit", "query"),
        ("/users/alice/tasks?limit=1001", "limit", "query"),
        ("/users/alice/tasks?limit=9223372036854775808", "limit", "query"),
        ("/users/alice/tasks?limit=ten", "limit", "query"),
        ("/users/alice/tasks?completed=1", "completed", "query"),
        ("/users/alice/tasks?completed=0", "completed", "query"),
        ("/users/alice/tasks?completed=yes", "completed", "query"),
        ("/users/alice/tasks?completed=on", "completed", "query"),
        ("/users/alice/tasks?completed=True", "completed", "query"),
        ("/users/alice/tasks?completed=FALSE", "completed", "query"),
        ("/users/alice/tasks?completed=", "completed", "query"),
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, url: str, field: str, location: str
) -> None:
    problem = _assert_problem(await client.get(url), 422)
    assert {"location": location, "field": field} in [
        {"location": error["location"], "field": error["field"]} for error in problem["errors"]
    ]


async def test_completed_is_spelled_true_or_false(client: httpx.AsyncClient) -> None:
    problem = _assert_problem(await client.get("/users/alice/tasks?completed=1"), 422)
    assert problem["errors"] == [
        {"location": "query", "field": "completed", "message": "Input should be 'true' or 'false'"}
    ]


@pytest.mark.parametrize(
    ("method", "url", "allow"),
    [
        ("PUT", "/users/alice/tasks", "DELETE, GET, PATCH, POST"),
        (
            "POST",
            "/users/alice/tasks/0b9f5a8e-3f4c-4d8a-9a53-2c1d6f0e7b11",
            "DELETE, GET, PATCH, PUT",
        ),
        ("GET", "/users/alice/tasks/0b9f5a8e-3f4c-4d8a-9a53-2c1d6f0e7b11/complete", "PATCH"),
        ("POST", "/health", "GET"),
    ],
)
async def test_405_lists_every_allowed_method(
    client: httpx.AsyncClient, method: str, url: str, allow: str
) -> None:
    response = await client.request(method, url)
    _assert_problem(response, 405)
    assert response.headers["allow"] == allow


async def test_unknown_path_is_404_problem(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.get("/nothing/here"), 404)
