"""Writes tests/data/release-2.2.json: a database as the service of contract 2.2.x (schema 0005)
left it, and what that service answered for it. tests/test_upgrade.py loads it at schema 0005,
migrates it and checks that the service now answers the same.

That release recorded complete all and reopen all as marks: a task written before its owner's
last mark read as if the marks had rewritten it, while its row kept the older state. This file
holds such tasks. It was made by running this script from a checkout of that release (commit
3756f1d): `python -m tests.data.make_release_2_2`.
"""

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import httpx

from tests.support.databases import connect, dsn
from tests.support.servers import database_server_url, service

OUT = Path(__file__).with_name("release-2.2.json")
USERS = ("alice", "bob", "carol", "dave")
TABLES = ("users", "tasks", "completion_marks", "idempotency_keys")


def _workload(base: str, seed: int = 22) -> None:
    chosen = random.Random(seed)
    tasks: dict[str, list[str]] = {user: [] for user in USERS}
    with httpx.Client(base_url=base) as http:
        for step in range(600):
            user = chosen.choice(USERS[:3])  # dave never writes after his first tasks
            owned = tasks[user]
            path = f"/users/{user}/tasks"
            roll = chosen.random()
            if roll < 0.3 or not owned:
                headers = {"Idempotency-Key": f"key-{step}"} if roll < 0.1 else {}
                body = {"title": f"{user} task {step}", "is_completed": chosen.random() < 0.3}
                if chosen.random() < 0.5:
                    body["description"] = f"details {step}"
                created = http.post(path, json=body, headers=headers)
                assert created.status_code == 201, created.text
                owned.append(created.json()["id"])
            elif roll < 0.55:
                state = chosen.random() < 0.5
                assert http.patch(path, json={"is_completed": state}).status_code == 200
            elif roll < 0.65:
                http.patch(f"{path}/{chosen.choice(owned)}/complete").raise_for_status()
            elif roll < 0.75:
                task = chosen.choice(owned)
                http.patch(f"{path}/{task}", json={"title": f"renamed {step}"}).raise_for_status()
            elif roll < 0.8:
                task = chosen.choice(owned)
                body = {"title": f"replaced {step}", "is_completed": chosen.random() < 0.5}
                http.put(f"{path}/{task}", json=body).raise_for_status()
            elif roll < 0.85:
                task = chosen.choice(owned)
                assert http.delete(f"{path}/{task}").status_code == 204
                owned.remove(task)
            elif roll < 0.88:
                deleted = http.delete(path, params={"completed": "true"})
                deleted.raise_for_status()
                listed = http.get(path, params={"limit": 1000}).json()
                tasks[user] = [task["id"] for task in listed]
        for n in range(3):
            http.post("/users/dave/tasks", json={"title": f"dave {n}"}).raise_for_status()
        http.patch("/users/dave/tasks", json={"is_completed": True}).raise_for_status()


def _answers(base: str) -> dict[str, Any]:
    """Every task as the service answered it (body and ETag), and each user's counts."""
    answers: dict[str, Any] = {"tasks": {}, "counts": {}}
    with httpx.Client(base_url=base) as http:
        for user in USERS:
            listed = http.get(f"/users/{user}/tasks", params={"limit": 1000}).json()
            for task in listed:
                one = http.get(f"/users/{user}/tasks/{task['id']}")
                assert one.json() == task
                answers["tasks"][task["id"]] = {"body": task, "etag": one.headers["etag"]}
            answers["counts"][user] = http.get(f"/users/{user}/tasks/counts").json()
    return answers


async def _tables(database_url: str) -> dict[str, Any]:
    async with connect(database_url) as connection:
        revision = await connection.fetchval("SELECT version_num FROM alembic_version")
        rows = {
            table: json.loads(
                await connection.fetchval(
                    f"SELECT coalesce(json_agg(t ORDER BY t), '[]') FROM {table} t"
                )
            )
            for table in TABLES
        }
    return {"revision": revision, "rows": rows}


def main() -> None:
    database = "release_2_2_fixture"
    with service(database) as base:
        _workload(base)
        answers = _answers(base)
    tables = asyncio.run(_tables(dsn(database_server_url(), database)))
    OUT.write_text(json.dumps({**tables, "answers": answers}, indent=1, sort_keys=True) + "\n")
    stale = sum(
        1
        for row in tables["rows"]["tasks"]
        if answers["tasks"][row["id"]]["body"]["is_completed"] != row["is_completed"]
    )
    print(f"wrote {OUT}: {len(tables['rows']['tasks'])} tasks, {stale} stale")


if __name__ == "__main__":
    main()
