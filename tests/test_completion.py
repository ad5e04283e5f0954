"""Complete all and reopen all are recorded as marks (app/completion.py); every task must read as
if each mark had rewritten it. A model applies the same operations one task at a time, with the
rules of a single write, and every field, entity tag and count is compared after every step."""

import asyncio
import random
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from app.completion import SET_ALL_COMPLETION
from app.tasks import CREATE
from tests.conftest import create_task
from tests.databases import connect

TICK = timedelta(microseconds=1)


@dataclass
class Expected:
    title: str
    is_completed: bool
    completed_at: datetime | None
    updated_at: datetime
    version: int


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _expected(task: dict[str, Any], version: int) -> Expected:
    updated_at = _time(task["updated_at"])
    assert updated_at is not None
    return Expected(
        task["title"], task["is_completed"], _time(task["completed_at"]), updated_at, version
    )


async def _last_mark_at(database_url: str) -> datetime:
    async with connect(database_url) as connection:
        at: datetime = await connection.fetchval(
            "SELECT at FROM completion_marks WHERE user_id = 'alice' ORDER BY epoch DESC LIMIT 1"
        )
    return at


async def _compare(client: httpx.AsyncClient, model: dict[str, Expected]) -> None:
    listed = {task["id"]: task for task in (await client.get("/users/alice/tasks")).json()}
    assert set(listed) == set(model)
    for task_id, expected in model.items():
        task = listed[task_id]
        assert _expected(task, expected.version) == expected, task_id
        one = await client.get(f"/users/alice/tasks/{task_id}")
        assert one.json() == task
        assert one.headers["etag"] == f'"{expected.version}"'
    for state in (True, False):
        filtered = await client.get("/users/alice/tasks", params={"completed": str(state).lower()})
        assert {t["id"] for t in filtered.json()} == {
            i for i, e in model.items() if e.is_completed is state
        }
    counts = (await client.get("/users/alice/tasks/counts")).json()
    completed = sum(e.is_completed for e in model.values())
    assert counts == {"total": len(model), "open": len(model) - completed, "completed": completed}


async def test_tasks_read_as_if_every_mark_had_rewritten_them(
    client: httpx.AsyncClient, database_url: str
) -> None:
    chosen = random.Random(11)
    model: dict[str, Expected] = {}
    for i in range(5):
        task = await create_task(client, title=f"t{i}", is_completed=i % 2 == 0)
        model[task["id"]] = _expected(task, 1)
    for step in range(80):
        ids = sorted(model)
        task_id = chosen.choice(ids) if ids else None
        roll = chosen.random()
        if roll < 0.35 or task_id is None:
            state = chosen.random() < 0.5
            response = await client.patch("/users/alice/tasks", json={"is_completed": state})
            changing = [e for e in model.values() if e.is_completed is not state]
            assert response.json() == {"updated": len(changing)}, step
            if changing:
                at = await _last_mark_at(database_url)
                for expected in changing:
                    expected.is_completed = state
                    expected.completed_at = at if state else None
                    expected.updated_at = max(at, expected.updated_at + TICK)
                    expected.version += 1
        elif roll < 0.85:
            path = f"/users/alice/tasks/{task_id}"
            before = model[task_id]
            state = chosen.random() < 0.5
            kind = chosen.choice(("toggle", "patch state", "patch title", "replace"))
            if kind == "toggle":
                response = await client.patch(f"{path}/complete")
                state = not before.is_completed
            elif kind == "patch state":
                response = await client.patch(path, json={"is_completed": state})
            elif kind == "patch title":
                response = await client.patch(path, json={"title": f"s{step}"})
                state = before.is_completed
            else:
                response = await client.put(path, json={"title": f"r{step}", "is_completed": state})
            assert response.status_code == 200, response.text
            after = _expected(response.json(), before.version + 1)
            assert response.headers["etag"] == f'"{before.version + 1}"'
            assert after.is_completed is state
            assert after.updated_at > before.updated_at
            if state and before.is_completed:
                assert after.completed_at == before.completed_at  # completion time kept
            elif state:
                assert after.completed_at is not None
            else:
                assert after.completed_at is None
            model[task_id] = after
        elif roll < 0.93:
            assert (await client.delete(f"/users/alice/tasks/{task_id}")).status_code == 204
            del model[task_id]
        else:
            task = await create_task(client, title=f"c{step}", is_completed=chosen.random() < 0.5)
            model[task["id"]] = _expected(task, 1)
        await _compare(client, model)


async def test_an_entity_tag_from_before_complete_all_no_longer_matches(
    client: httpx.AsyncClient,
) -> None:
    task = await create_task(client)
    path = f"/users/alice/tasks/{task['id']}"
    before = (await client.get(path)).headers["etag"]
    await client.patch("/users/alice/tasks", json={"is_completed": True})
    refused = await client.patch(f"{path}/complete", headers={"If-Match": before})
    assert refused.status_code == 412
    now = (await client.get(path)).headers["etag"]
    assert now != before
    reopened = await client.patch(f"{path}/complete", headers={"If-Match": now})
    assert reopened.status_code == 200
    assert reopened.json()["is_completed"] is False
    assert reopened.headers["etag"] == '"3"'


async def _behind_a_held_complete_all(
    client: httpx.AsyncClient, database_url: str, request: Coroutine[Any, Any, httpx.Response]
) -> httpx.Response:
    """Runs `request` while another connection holds complete all uncommitted: the request's
    statement waits for the owner's row, its snapshot older than the mark it then finds."""
    async with connect(database_url) as connection:
        transaction = connection.transaction()
        await transaction.start()
        await connection.fetchval(SET_ALL_COMPLETION, "alice", True)
        pending = asyncio.create_task(request)
        await asyncio.sleep(0.5)
        assert not pending.done()  # waiting for the owner's row
        await transaction.commit()
        return await pending


async def test_a_toggle_that_waited_for_complete_all_applies_after_it(
    client: httpx.AsyncClient, database_url: str
) -> None:
    task = await create_task(client)
    response = await _behind_a_held_complete_all(
        client, database_url, client.patch(f"/users/alice/tasks/{task['id']}/complete")
    )
    assert response.status_code == 200
    assert response.json()["is_completed"] is False  # completed by the mark, then toggled
    assert response.headers["etag"] == '"3"'
    counts = (await client.get("/users/alice/tasks/counts")).json()
    assert counts == {"total": 1, "open": 1, "completed": 0}


async def test_clear_completed_that_waited_for_complete_all_deletes_what_it_completed(
    client: httpx.AsyncClient, database_url: str
) -> None:
    for _ in range(3):
        await create_task(client)
    response = await _behind_a_held_complete_all(
        client, database_url, client.delete("/users/alice/tasks", params={"completed": "true"})
    )
    assert response.json() == {"deleted": 3}
    counts = (await client.get("/users/alice/tasks/counts")).json()
    assert counts == {"total": 0, "open": 0, "completed": 0}


async def test_complete_all_behind_a_create_counts_the_new_task(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Complete all waits for a create of the same user that its snapshot does not hold; both
    counts of the owner's row are then taken from the row it locked, not from that snapshot."""
    await create_task(client)
    async with connect(database_url) as connection:
        transaction = connection.transaction()
        await transaction.start()
        await connection.fetchrow(CREATE, "alice", "held", None, False, None, 10_000)
        pending = asyncio.create_task(
            client.patch("/users/alice/tasks", json={"is_completed": True})
        )
        await asyncio.sleep(0.5)
        assert not pending.done()  # waiting for the owner's row
        await transaction.commit()
        response = await pending
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 2}
    counts = (await client.get("/users/alice/tasks/counts")).json()
    assert counts == {"total": 2, "open": 0, "completed": 2}
