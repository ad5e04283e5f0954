"""Every operation's success and error paths, through the app over real PostgreSQL."""

import asyncio
from datetime import datetime
from uuid import uuid4

import httpx

from generated.models import Task
from tests.conftest import create_task

TASK_FIELDS = set(Task.model_fields)  # the contract's Task


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_create_returns_the_task_with_location(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/users/alice/tasks", json={"title": "Buy milk", "description": "Two litres"}
    )
    assert response.status_code == 201
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert task["user_id"] == "alice"
    assert task["title"] == "Buy milk"
    assert task["description"] == "Two litres"
    assert task["is_completed"] is False
    assert task["completed_at"] is None
    assert task["created_at"] == task["updated_at"]
    assert _time(task["created_at"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert response.headers["location"] == f"/users/alice/tasks/{task['id']}"
    fetched = await client.get(response.headers["location"])
    assert fetched.json() == task


async def test_create_completed_sets_completed_at(client: httpx.AsyncClient) -> None:
    task = await create_task(client, is_completed=True)
    assert task["is_completed"] is True
    assert task["completed_at"] is not None


async def test_every_field_is_present_with_nulls(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    listed = (await client.get("/users/alice/tasks")).json()
    assert listed == [task]
    assert set(listed[0]) == TASK_FIELDS


async def test_get_unknown_task_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/users/alice/tasks/{uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Task not found.",
    }


async def test_put_replaces_every_field_and_resets_defaults(client: httpx.AsyncClient) -> None:
    task = await create_task(client, description="old", is_completed=True)
    response = await client.put(f"/users/alice/tasks/{task['id']}", json={"title": "New"})
    assert response.status_code == 200
    replaced = response.json()
    assert replaced["title"] == "New"
    assert replaced["description"] is None
    assert replaced["is_completed"] is False
    assert replaced["completed_at"] is None
    assert replaced["created_at"] == task["created_at"]
    assert _time(replaced["updated_at"]) > _time(task["updated_at"])


async def test_put_requires_title(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    response = await client.put(f"/users/alice/tasks/{task['id']}", json={"description": "x"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"location": "body", "field": "title", "message": "Field required"}
    ]


async def test_patch_changes_only_named_fields(client: httpx.AsyncClient) -> None:
    task = await create_task(client, description="keep me")
    response = await client.patch(f"/users/alice/tasks/{task['id']}", json={"title": "Renamed"})
    assert response.status_code == 200
    patched = response.json()
    assert patched["title"] == "Renamed"
    assert patched["description"] == "keep me"
    assert patched["is_completed"] is False
    assert _time(patched["updated_at"]) > _time(task["updated_at"])


async def test_patch_null_description_clears_it(client: httpx.AsyncClient) -> None:
    task = await create_task(client, description="to clear")
    response = await client.patch(f"/users/alice/tasks/{task['id']}", json={"description": None})
    assert response.status_code == 200
    assert response.json()["description"] is None
    assert response.json()["title"] == "Buy milk"


async def test_patch_null_title_or_completion_is_422(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    for field in ("title", "is_completed"):
        response = await client.patch(f"/users/alice/tasks/{task['id']}", json={field: None})
        assert response.status_code == 422, field
        assert response.json()["errors"][0]["field"] == field
    assert (await client.get(f"/users/alice/tasks/{task['id']}")).json() == task


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    response = await client.patch(f"/users/alice/tasks/{task['id']}", json={})
    assert response.status_code == 200
    assert response.json() == task


async def test_patch_completion_sets_and_clears_completed_at(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    url = f"/users/alice/tasks/{task['id']}"
    done = (await client.patch(url, json={"is_completed": True})).json()
    assert done["is_completed"] is True
    assert done["completed_at"] is not None
    again = (await client.patch(url, json={"is_completed": True})).json()
    assert again["completed_at"] == done["completed_at"]
    reopened = (await client.patch(url, json={"is_completed": False})).json()
    assert reopened["is_completed"] is False
    assert reopened["completed_at"] is None


async def test_toggle_twice(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    url = f"/users/alice/tasks/{task['id']}/complete"
    first = await client.patch(url)
    assert first.status_code == 200
    assert first.json()["is_completed"] is True
    assert first.json()["completed_at"] is not None
    second = await client.patch(url)
    assert second.json()["is_completed"] is False
    assert second.json()["completed_at"] is None
    assert _time(second.json()["updated_at"]) > _time(first.json()["updated_at"])


async def test_concurrent_toggles_lose_no_update(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    url = f"/users/alice/tasks/{task['id']}/complete"
    responses = await asyncio.gather(*(client.patch(url) for _ in range(7)))
    assert all(response.status_code == 200 for response in responses)
    final = (await client.get(f"/users/alice/tasks/{task['id']}")).json()
    assert final["is_completed"] is True  # seven flips from open


async def test_toggle_unknown_task_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"/users/alice/tasks/{uuid4()}/complete")
    assert response.status_code == 404


async def test_delete(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    url = f"/users/alice/tasks/{task['id']}"
    response = await client.delete(url)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url)).status_code == 404


async def test_unknown_user_lists_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/nobody/tasks")
    assert response.status_code == 200
    assert response.json() == []
    assert "link" not in response.headers


async def test_completed_filter(client: httpx.AsyncClient) -> None:
    open_task = await create_task(client, title="open")
    done_task = await create_task(client, title="done", is_completed=True)
    done = (await client.get("/users/alice/tasks", params={"completed": "true"})).json()
    still_open = (await client.get("/users/alice/tasks", params={"completed": "false"})).json()
    assert [task["id"] for task in done] == [done_task["id"]]
    assert [task["id"] for task in still_open] == [open_task["id"]]


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).json() == {"status": "ready"}


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert made.headers["x-request-id"] != "bad id\twith spaces"
    assert len(made.headers["x-request-id"]) == 32
