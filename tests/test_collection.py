"""What a todo frontend needs on a whole list: search, counts, complete all, clear completed, and
the per-user limit."""

import asyncio
from collections import Counter
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.conftest import create_task, listing_pages, serving, truncate
from tests.support.databases import connect


async def _titles(client: httpx.AsyncClient, **params: str) -> list[str]:
    response = await client.get("/users/alice/tasks", params=params)
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()]


async def test_search_matches_title_or_description_ignoring_case(client: httpx.AsyncClient) -> None:
    await create_task(client, title="Buy MILK")
    await create_task(client, title="Call mum", description="about the milkman")
    await create_task(client, title="Water plants")
    await create_task(client, user_id="bob", title="Buy milk too")
    assert await _titles(client, q="milk") == ["Buy MILK", "Call mum"]
    assert await _titles(client, q="Milk", order="newest") == ["Call mum", "Buy MILK"]
    assert await _titles(client, q="MILK", completed="false") == ["Buy MILK", "Call mum"]
    assert await _titles(client, q="milk", completed="true") == []
    assert await _titles(client, q="plant") == ["Water plants"]
    assert await _titles(client, q="nothing like it") == []


async def test_search_takes_its_text_literally(client: httpx.AsyncClient) -> None:
    await create_task(client, title="50% off")
    await create_task(client, title="500 off")
    await create_task(client, title="file_name")
    await create_task(client, title="filename")
    await create_task(client, title=r"back\slash")
    assert await _titles(client, q="50%") == ["50% off"]
    assert await _titles(client, q="e_n") == ["file_name"]
    assert await _titles(client, q="\\") == [r"back\slash"]
    assert await _titles(client, q="k\\s") == [r"back\slash"]


async def test_search_pages_keep_the_search(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await create_task(client, title=f"milk {i}")
        await create_task(client, title=f"bread {i}")
    listed = await listing_pages(client, "/users/alice/tasks?q=milk&limit=2")
    titles = [task["title"] for page in listed for task in page]
    assert titles == [f"milk {i}" for i in range(5)]


@pytest.mark.parametrize("q", ["", "x" * 101, "nul\x00"])
async def test_a_bad_search_is_422(client: httpx.AsyncClient, q: str) -> None:
    response = await client.get("/users/alice/tasks", params={"q": q})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "q"


async def test_a_bad_order_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/alice/tasks", params={"order": "random"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "order"


async def test_counts(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users/alice/tasks/counts")).json() == {
        "total": 0,
        "open": 0,
        "completed": 0,
    }
    for completed in (False, False, True):
        await create_task(client, is_completed=completed)
    await create_task(client, user_id="bob")
    response = await client.get("/users/alice/tasks/counts")
    assert response.status_code == 200
    assert response.json() == {"total": 3, "open": 2, "completed": 1}


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
async def test_counts_is_never_read_as_a_task_id(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/users/alice/tasks/counts", json={"title": "x"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    toggle = await client.patch("/users/alice/tasks/counts/complete")
    assert toggle.status_code == 422  # a task path under counts: its task_id is malformed
    assert toggle.json()["errors"][0]["field"] == "task_id"


async def test_complete_all_then_reopen_all(client: httpx.AsyncClient) -> None:
    done = await create_task(client, title="done", is_completed=True)
    open_ = [await create_task(client, title=f"open {i}") for i in range(3)]
    other = await create_task(client, user_id="bob", title="bob's")
    response = await client.patch("/users/alice/tasks", json={"is_completed": True})
    assert response.status_code == 200
    assert response.json() == {"updated": 3}
    tasks = {task["id"]: task for task in (await client.get("/users/alice/tasks")).json()}
    assert tasks[done["id"]] == done  # already completed: not changed at all
    for task in open_:
        completed = tasks[task["id"]]
        assert completed["is_completed"] is True
        assert completed["completed_at"] is not None
        assert datetime.fromisoformat(completed["updated_at"]) > datetime.fromisoformat(
            task["updated_at"]
        )
    assert (await client.get(f"/users/bob/tasks/{other['id']}")).json() == other
    again = await client.patch("/users/alice/tasks", json={"is_completed": True})
    assert again.json() == {"updated": 0}
    reopened = await client.patch("/users/alice/tasks", json={"is_completed": False})
    assert reopened.json() == {"updated": 4}
    for task in (await client.get("/users/alice/tasks")).json():
        assert task["is_completed"] is False
        assert task["completed_at"] is None


async def test_complete_all_moves_every_changed_tasks_etag(client: httpx.AsyncClient) -> None:
    created = await client.post("/users/alice/tasks", json={"title": "x"})
    await client.patch("/users/alice/tasks", json={"is_completed": True})
    stale = await client.patch(
        created.headers["location"], json={}, headers={"If-Match": created.headers["etag"]}
    )
    assert stale.status_code == 412


@pytest.mark.parametrize(
    "body",
    [{}, {"is_completed": "true"}, {"is_completed": 1}, {"is_completed": None},
     {"is_completed": True, "title": "x"}],
)  # fmt: skip
async def test_complete_all_is_strict(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    task = await create_task(client)
    response = await client.patch("/users/alice/tasks", json=body)
    assert response.status_code == 422
    assert (await client.get(f"/users/alice/tasks/{task['id']}")).json() == task


async def test_clear_completed_and_clear_open(client: httpx.AsyncClient) -> None:
    for completed in (True, True, False):
        await create_task(client, is_completed=completed)
    await create_task(client, user_id="bob", is_completed=True)
    cleared = await client.delete("/users/alice/tasks", params={"completed": "true"})
    assert cleared.status_code == 200
    assert cleared.json() == {"deleted": 2}
    assert (await client.get("/users/alice/tasks/counts")).json()["total"] == 1
    assert (await client.get("/users/bob/tasks/counts")).json()["total"] == 1
    rest = await client.delete("/users/alice/tasks", params={"completed": "false"})
    assert rest.json() == {"deleted": 1}
    nothing = await client.delete("/users/alice/tasks", params={"completed": "false"})
    assert nothing.json() == {"deleted": 0}


@pytest.mark.parametrize(
    "params", [{}, {"completed": ""}, {"completed": "1"}, {"completed": "all"}]
)
async def test_clearing_needs_completed(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    await create_task(client)
    response = await client.delete("/users/alice/tasks", params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "location": "query",
        "field": "completed",
        "message": response.json()["errors"][0]["message"],
    }
    assert (await client.get("/users/alice/tasks/counts")).json()["total"] == 1


async def _counted(
    client: httpx.AsyncClient, database_url: str, user_id: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The owner's counters (tasks, completed tasks), and the tasks the API lists."""
    async with connect(database_url) as connection:
        row = await connection.fetchrow(
            "SELECT task_count, completed_count FROM users WHERE id = $1", user_id
        )
    assert row is not None
    tasks = [
        task
        for page in await listing_pages(client, f"/users/{user_id}/tasks?limit=1000")
        for task in page
    ]
    return (row[0], row[1]), (len(tasks), sum(task["is_completed"] for task in tasks))


async def test_the_owners_counts_follow_every_write(
    client: httpx.AsyncClient, database_url: str
) -> None:
    tasks = [await create_task(client, is_completed=i % 2 == 0) for i in range(6)]
    path = [f"/users/alice/tasks/{task['id']}" for task in tasks]

    async def check(total: int, completed: int) -> None:
        counters, counted = await _counted(client, database_url, "alice")
        assert counted == (total, completed)
        assert counters == counted

    await check(6, 3)
    await client.patch(f"{path[1]}/complete")  # open -> completed
    await check(6, 4)
    await client.patch(path[0], json={"is_completed": False})
    await check(6, 3)
    await client.patch(path[2], json={"is_completed": True})  # completed already
    await check(6, 3)
    await client.patch(path[2], json={"title": "renamed"})
    await check(6, 3)
    await client.put(path[3], json={"title": "replaced", "is_completed": True})
    await check(6, 4)
    await client.put(path[3], json={"title": "replaced again"})  # leaves it open
    await check(6, 3)
    stale = (await client.get(path[4])).headers["etag"]
    toggled = await client.patch(f"{path[4]}/complete", headers={"If-Match": stale})
    assert toggled.status_code == 200
    refused = await client.patch(f"{path[4]}/complete", headers={"If-Match": stale})
    assert refused.status_code == 412
    await check(6, 2)
    etag = (await client.get(path[5])).headers["etag"]
    guarded = await client.patch(path[5], json={"is_completed": True}, headers={"If-Match": etag})
    assert guarded.status_code == 200
    await check(6, 3)
    await client.delete(path[0])  # open
    await client.delete(path[1], headers={"If-Match": (await client.get(path[1])).headers["etag"]})
    await client.delete(path[1])  # gone already: counts nothing
    await check(4, 2)
    await client.patch("/users/alice/tasks", json={"is_completed": True})
    await check(4, 4)
    await client.patch("/users/alice/tasks", json={"is_completed": False})
    await check(4, 0)
    await client.patch(f"{path[2]}/complete")
    await client.delete("/users/alice/tasks", params={"completed": "true"})
    await check(3, 0)
    await client.delete("/users/alice/tasks", params={"completed": "false"})
    await check(0, 0)


async def test_the_owners_counts_hold_under_racing_writes(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Three apps with pools of their own, as three workers: the writes to one user meet in the
    database, not in one app's turns, and every one of them answers."""
    tasks = [await create_task(client, is_completed=i % 2 == 0) for i in range(5)]
    paths = [f"/users/alice/tasks/{task['id']}" for task in tasks]
    async with serving(database_url) as second, serving(database_url) as third:
        apps = (client, second, third)
        writes: list[Coroutine[Any, Any, httpx.Response]] = []
        for round_ in range(12):
            for index, path in enumerate(paths):
                app = apps[(round_ + index) % 3]
                writes.append(app.patch(f"{path}/complete"))
                writes.append(app.patch(path, json={"is_completed": (round_ + index) % 2 == 0}))
                writes.append(app.put(path, json={"title": "t", "is_completed": round_ % 3 == 0}))
            bulk = {"is_completed": round_ % 2 == 0}
            writes.append(apps[round_ % 3].patch("/users/alice/tasks", json=bulk))
            writes.append(apps[round_ % 3].post("/users/alice/tasks", json={"title": "n"}))
            # One task toggled from every app at once: each waits on the owner's row while the
            # others commit.
            writes.extend(app.patch(f"{paths[1]}/complete") for app in apps for _ in range(4))
        writes.append(second.delete(paths[0]))
        writes.append(third.delete("/users/alice/tasks", params={"completed": "true"}))
        responses = await asyncio.gather(*writes)
    # 404: a write that came after the racing delete, or clear completed, of its task.
    assert {response.status_code for response in responses} <= {200, 201, 204, 404}, {
        (response.status_code, response.text) for response in responses if response.is_error
    }
    counters, counted = await _counted(client, database_url, "alice")
    assert counters == counted
    counts = (await client.get("/users/alice/tasks/counts")).json()
    assert (counts["total"], counts["completed"]) == counted
    assert counts["open"] == counted[0] - counted[1]


async def test_a_create_beyond_the_limit_is_409(database_url: str) -> None:
    await truncate(database_url)
    async with serving(database_url, Settings(max_tasks_per_user=3, _env_file=None)) as client:
        for _ in range(3):
            await create_task(client)
        refused = await client.post("/users/alice/tasks", json={"title": "one more"})
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            "A user can hold at most 3 tasks; delete some to create more."
        )
        assert "retry-after" not in refused.headers
        keyed = await client.post(
            "/users/alice/tasks", json={"title": "x"}, headers={"Idempotency-Key": "k"}
        )
        assert keyed.status_code == 409
        assert (await client.get("/users/alice/tasks/counts")).json()["total"] == 3
        assert (await client.post("/users/bob/tasks", json={"title": "x"})).status_code == 201
        await client.delete("/users/alice/tasks", params={"completed": "false"})
        retried = await client.post(
            "/users/alice/tasks", json={"title": "x"}, headers={"Idempotency-Key": "k"}
        )
        assert retried.status_code == 201  # nothing was recorded for the refused key


async def test_the_limit_holds_under_racing_creates(database_url: str) -> None:
    await truncate(database_url)
    async with connect(database_url) as connection:
        await connection.execute("INSERT INTO users (id, task_count) VALUES ('alice', 9990)")
        await connection.execute(
            "INSERT INTO tasks (user_id, title) SELECT 'alice', 't' || n"
            " FROM generate_series(1, 9990) n"
        )
    async with serving(database_url, Settings(_env_file=None)) as client:
        responses = await asyncio.gather(
            *(client.post("/users/alice/tasks", json={"title": f"race {i}"}) for i in range(100))
        )
        assert Counter(response.status_code for response in responses) == {201: 10, 409: 90}
        assert (await client.get("/users/alice/tasks/counts")).json()["total"] == 10_000
        counters, counted = await _counted(client, database_url, "alice")
    assert counters == counted == (10_000, 0)
