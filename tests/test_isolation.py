"""A task of another user is answered exactly like a task that does not exist."""

from uuid import uuid4

import httpx
import pytest

from tests.conftest import create_task


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"title": "stolen"}),
        ("PATCH", "", {"title": "stolen"}),
        ("PATCH", "/complete", None),
        ("DELETE", "", None),
    ],
)
async def test_other_users_task_is_indistinguishable_from_missing(
    client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, str] | None
) -> None:
    task = await create_task(client, user_id="alice")
    foreign = await client.request(method, f"/users/mallory/tasks/{task['id']}{suffix}", json=body)
    missing = await client.request(method, f"/users/mallory/tasks/{uuid4()}{suffix}", json=body)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content
    ignored = {"x-request-id", "content-length"}
    assert {k: v for k, v in foreign.headers.items() if k not in ignored} == {
        k: v for k, v in missing.headers.items() if k not in ignored
    }
    assert (await client.get(f"/users/alice/tasks/{task['id']}")).json() == task


async def test_lists_are_per_user(client: httpx.AsyncClient) -> None:
    alice = await create_task(client, user_id="alice")
    bob = await create_task(client, user_id="bob")
    assert (await client.get("/users/alice/tasks")).json() == [alice]
    assert (await client.get("/users/bob/tasks")).json() == [bob]
