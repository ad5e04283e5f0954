"""Random sequences of every operation, with the API's view compared to the raw table after each
step: what the API says about a task is what `SELECT` shows after the same commit, and the owner's
counts are those of the table. A model beside it applies each operation with the rules of the
contract (versions, completion times, update times, filters, search, pages), so a step that
changes the wrong tasks, or the right ones wrongly, fails too."""

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson

from generated.models import Task
from tests.conftest import LINK
from tests.support.databases import connect

USERS = ("alice", "auth0|5f7c8ec7c33c6c004bbafe82")  # ids as identity providers issue them
WORDS = ("milk", "Bread", "call MUM", "50% off", "file_name", "dentist", "tax return")
TICK = timedelta(microseconds=1)


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass
class Expected:
    """A task as the model holds it: the contract's fields, and its version."""

    body: dict[str, Any]
    version: int

    @property
    def is_completed(self) -> bool:
        completed: bool = self.body["is_completed"]
        return completed

    def text(self) -> str:
        return f"{self.body['title']}\n{self.body['description'] or ''}".lower()


@dataclass
class Model:
    tasks: dict[str, Expected] = field(default_factory=dict)
    keys: dict[tuple[str, str], tuple[dict[str, Any], bytes]] = field(default_factory=dict)

    def owned(self, user: str) -> list[Expected]:
        return sorted(
            (task for task in self.tasks.values() if task.body["user_id"] == user),
            key=lambda task: (task.body["created_at"], task.body["id"]),
        )


async def _table(database_url: str) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
    async with connect(database_url) as connection:
        tasks = [dict(row) for row in await connection.fetch("SELECT * FROM tasks")]
        counts = {
            row["id"]: (row["task_count"], row["completed_count"])
            for row in await connection.fetch("SELECT * FROM users")
        }
    return tasks, counts


def _as_answered(row: dict[str, Any]) -> dict[str, Any]:
    """A table row as the contract's Task, every field read as its type."""
    return Task.model_validate({name: row[name] for name in Task.model_fields}).model_dump()


def _parsed(body: dict[str, Any]) -> dict[str, Any]:
    """An answer as the contract's Task, every field read as its type."""
    return Task.model_validate_json(orjson.dumps(body)).model_dump()


async def _all_pages(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        response = await client.get(next_url)
        assert response.status_code == 200, response.text
        found += response.json()
        link = response.headers.get("link")
        next_url = LINK.match(link).group("url") if link else None  # type: ignore[union-attr]
    return found


async def _compare(client: httpx.AsyncClient, database_url: str, model: Model) -> None:
    """The API, the raw table and the model agree on every task and every count."""
    rows, counts = await _table(database_url)
    table = {str(row["id"]): row for row in rows}
    assert set(table) == set(model.tasks)
    for task_id, expected in model.tasks.items():
        assert _as_answered(table[task_id]) == _parsed(expected.body), task_id
        assert table[task_id]["version"] == expected.version, task_id
    for user in USERS:
        listed = await _all_pages(client, f"/users/{user}/tasks?limit=7")
        assert [_parsed(task) for task in listed] == [
            _parsed(task.body) for task in model.owned(user)
        ]
        completed = sum(task.is_completed for task in model.owned(user))
        total = len(model.owned(user))
        answered = (await client.get(f"/users/{user}/tasks/counts")).json()
        assert answered == {"total": total, "open": total - completed, "completed": completed}
        assert counts.get(user, (0, 0)) == (total, completed)


def _written(before: Expected, response: httpx.Response) -> Expected:
    """A single write's answer, checked against the rules of a write."""
    assert response.status_code == 200, response.text
    after = Expected(response.json(), before.version + 1)
    assert response.headers["etag"] == f'"{after.version}"'
    assert after.body["created_at"] == before.body["created_at"]
    before_update = _time(before.body["updated_at"])
    after_update = _time(after.body["updated_at"])
    assert before_update is not None
    assert after_update is not None
    assert after_update > before_update
    if after.is_completed and before.is_completed:
        assert after.body["completed_at"] == before.body["completed_at"]  # kept
    elif after.is_completed:
        assert after.body["completed_at"] is not None
    else:
        assert after.body["completed_at"] is None
    return after


class Steps:
    def __init__(self, client: httpx.AsyncClient, model: Model, seed: int) -> None:
        self.client = client
        self.model = model
        self.chosen = random.Random(seed)
        self.step = 0

    def _pick(self, user: str) -> Expected | None:
        owned = self.model.owned(user)
        return self.chosen.choice(owned) if owned else None

    def _fields(self) -> dict[str, Any]:
        body: dict[str, Any] = {"title": f"{self.chosen.choice(WORDS)} {self.step}"}
        if self.chosen.random() < 0.5:
            body["description"] = self.chosen.choice((None, *WORDS))
        if self.chosen.random() < 0.5:
            body["is_completed"] = self.chosen.random() < 0.5
        return body

    async def create(self, user: str) -> None:
        body = self._fields()
        headers = {}
        key = None
        if self.chosen.random() < 0.4:
            key = f"k{self.chosen.randrange(6)}"
            headers["Idempotency-Key"] = key
        stored = self.model.keys.get((user, key)) if key else None
        if stored is not None and self.chosen.random() < 0.7:
            body = stored[0]  # a retry of the earlier request
        response = await self.client.post(f"/users/{user}/tasks", json=body, headers=headers)
        if stored is not None and body == stored[0]:
            assert response.status_code == 201
            assert response.headers["idempotent-replayed"] == "true"
            assert response.content == stored[1]
            return
        if stored is not None:
            assert response.status_code == 422  # the same key, another request
            return
        assert response.status_code == 201, response.text
        created = response.json()
        assert response.headers["etag"] == '"1"'
        location = f"/users/{quote(user, safe='')}/tasks/{created['id']}"
        assert response.headers["location"] == location
        assert created["is_completed"] is body.get("is_completed", False)
        assert (created["completed_at"] is not None) is created["is_completed"]
        assert created["updated_at"] == created["created_at"]
        self.model.tasks[created["id"]] = Expected(created, 1)
        if key:
            self.model.keys[(user, key)] = (body, response.content)

    async def get(self, user: str) -> None:
        task = self._pick(user)
        if task is None:
            return
        url = f"/users/{user}/tasks/{task.body['id']}"
        response = await self.client.get(url)
        assert _parsed(response.json()) == _parsed(task.body)
        assert response.headers["etag"] == f'"{task.version}"'
        cached = await self.client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert cached.status_code == 304
        other = await self.client.get(f"/users/someone-else/tasks/{task.body['id']}")
        assert other.status_code == 404

    async def listing(self, user: str) -> None:
        params: dict[str, str] = {"limit": str(self.chosen.randint(1, 5))}
        tasks = self.model.owned(user)
        if self.chosen.random() < 0.5:
            completed = self.chosen.random() < 0.5
            params["completed"] = "true" if completed else "false"
            tasks = [task for task in tasks if task.is_completed is completed]
        if self.chosen.random() < 0.5:
            q = self.chosen.choice(("m", "MILK", "0%", "e_n", "a", "tax r", " ", "ue"))
            params["q"] = q
            tasks = [task for task in tasks if q.lower() in task.text()]
        if self.chosen.random() < 0.5:
            params["order"] = self.chosen.choice(("oldest", "newest"))
            if params["order"] == "newest":
                tasks = tasks[::-1]
        query = urlencode(params, quote_via=quote)
        listed = await _all_pages(self.client, f"/users/{user}/tasks?{query}")
        assert [task["id"] for task in listed] == [task.body["id"] for task in tasks], params

    async def write(self, user: str) -> None:
        task = self._pick(user)
        if task is None:
            return
        url = f"/users/{user}/tasks/{task.body['id']}"
        headers = {}
        roll = self.chosen.random()
        if roll < 0.2:
            headers["If-Match"] = f'"{task.version - 1}", "{task.version + 1}"'  # not current
        elif roll < 0.5:
            headers["If-Match"] = self.chosen.choice((f'"{task.version}"', "*"))
        kind = self.chosen.choice(("toggle", "patch", "replace", "delete"))
        if kind == "toggle":
            response = await self.client.patch(f"{url}/complete", headers=headers)
        elif kind == "patch":
            patch = {k: v for k, v in self._fields().items() if self.chosen.random() < 0.7}
            response = await self.client.patch(url, json=patch, headers=headers)
        elif kind == "replace":
            body = self._fields()
            response = await self.client.put(url, json=body, headers=headers)
        else:
            response = await self.client.delete(url, headers=headers)
        if roll < 0.2:
            assert response.status_code == 412, response.text  # and nothing changed
            return
        if kind == "delete":
            assert response.status_code == 204
            del self.model.tasks[task.body["id"]]
            return
        if kind == "patch" and not patch:
            assert response.status_code == 200
            assert _parsed(response.json()) == _parsed(task.body)  # an empty patch changes nothing
            return
        after = _written(task, response)
        if kind == "toggle":
            assert after.is_completed is not task.is_completed
        elif kind == "patch":
            for name, value in patch.items():
                assert after.body[name] == value
            for name in {"title", "description", "is_completed"} - patch.keys():
                assert after.body[name] == task.body[name]
        else:
            expected = {"description": None, "is_completed": False, **body}
            assert {name: after.body[name] for name in expected} == expected
        self.model.tasks[task.body["id"]] = after

    async def all_at_once(self, user: str, database_url: str) -> None:
        state = self.chosen.random() < 0.5
        tasks = self.model.owned(user)
        if self.chosen.random() < 0.6:
            response = await self.client.patch(f"/users/{user}/tasks", json={"is_completed": state})
            changing = [task for task in tasks if task.is_completed is not state]
            assert response.json() == {"updated": len(changing)}
            rows, _ = await _table(database_url)
            table = {str(row["id"]): row for row in rows}
            times = set()
            for task in changing:
                row = _as_answered(table[task.body["id"]])
                before = _time(task.body["updated_at"])
                assert before is not None
                assert row["updated_at"] > before
                assert row["is_completed"] is state
                assert (row["completed_at"] is not None) is state
                times.add(row["completed_at"])
                body = {
                    **task.body,
                    "is_completed": state,
                    "completed_at": row["completed_at"] and row["completed_at"].isoformat(),
                    "updated_at": row["updated_at"].isoformat(),
                }
                self.model.tasks[task.body["id"]] = Expected(body, task.version + 1)
            assert len(times) <= 1  # one statement, one time
        else:
            params = {"completed": "true" if state else "false"}
            response = await self.client.delete(f"/users/{user}/tasks", params=params)
            cleared = [task for task in tasks if task.is_completed is state]
            assert response.json() == {"deleted": len(cleared)}
            for task in cleared:
                del self.model.tasks[task.body["id"]]


async def test_the_api_and_the_table_agree_after_every_step(
    client: httpx.AsyncClient, database_url: str
) -> None:
    model = Model()
    steps = Steps(client, model, seed=21)
    for step in range(160):
        steps.step = step
        user = steps.chosen.choice(USERS)
        roll = steps.chosen.random()
        if roll < 0.3 or len(model.owned(user)) < 2:
            await steps.create(user)
        elif roll < 0.4:
            await steps.get(user)
        elif roll < 0.5:
            await steps.listing(user)
        elif roll < 0.85:
            await steps.write(user)
        else:
            await steps.all_at_once(user, database_url)
        await _compare(client, database_url, model)
    # Every kind of step ran, on tasks in both states.
    assert len(model.keys) > 3
