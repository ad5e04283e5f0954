"""The upgrade from a database written by the previous release (schema 0005), whose complete all
and reopen all left tasks stale on disk: after the migrations every task's row holds what that
release answered for it, and the service answers the same, task by task, entity tag by entity tag,
count by count. Nothing written is lost, and the keys of its keyed creates still replay.

tests/data/release-2.2.json holds that database and the answers; tests/data/make_release_2_2.py
says how it was made."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from app.db.migrate import upgrade
from tests.conftest import serving
from tests.support.databases import connect, recreate_database

RELEASE = json.loads((Path(__file__).parent / "data" / "release-2.2.json").read_text())
TABLES = ("users", "tasks", "completion_marks", "idempotency_keys")


@pytest.fixture(scope="module")
def upgraded_url(database_url: str) -> str:
    url = asyncio.run(recreate_database(database_url, "tasks_upgrade"))
    upgrade(url, RELEASE["revision"])

    async def load() -> None:
        async with connect(url) as connection:
            for table in TABLES:
                await connection.execute(
                    f"INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1)",
                    json.dumps(RELEASE["rows"][table]),
                )
            # Recorded when the file was made: kept live, as they would be the day after it.
            await connection.execute(
                "UPDATE idempotency_keys SET expires_at = now() + interval '1 hour'"
                " WHERE key LIKE 'key-%'"
            )

    asyncio.run(load())
    upgrade(url)
    return url


def _stale(rows: list[dict[str, Any]]) -> int:
    answers = RELEASE["answers"]["tasks"]
    return sum(
        row["is_completed"] != answers[row["id"]]["body"]["is_completed"]
        or f'"{row["version"]}"' != answers[row["id"]]["etag"]
        for row in rows
    )


def test_the_previous_release_left_stale_rows() -> None:
    """What this test upgrades: rows that said something else than that release's answers."""
    assert _stale(RELEASE["rows"]["tasks"]) > 20
    assert len(RELEASE["rows"]["completion_marks"]) > 20


async def test_every_row_holds_what_the_previous_release_answered(upgraded_url: str) -> None:
    async with connect(upgraded_url) as connection:
        rows = [
            json.loads(row)
            for row in await connection.fetchval(
                "SELECT array_agg(row_to_json(tasks)::text) FROM tasks"
            )
        ]
        columns = {
            row["column_name"]
            for row in await connection.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name IN ('users', 'tasks')"
            )
        }
        marks = await connection.fetchval("SELECT to_regclass('completion_marks')")
    assert marks is None
    assert not {name for name in columns if name.startswith("completion_")}
    answers = RELEASE["answers"]["tasks"]
    assert {row["id"] for row in rows} == set(answers)
    assert _stale(rows) == 0
    for row in rows:
        answered = answers[row["id"]]["body"]
        assert {name: row[name] for name in answered} == answered, row["id"]


async def test_the_service_answers_as_the_previous_release_did(upgraded_url: str) -> None:
    answers = RELEASE["answers"]
    async with serving(upgraded_url) as client:
        for task_id, answer in answers["tasks"].items():
            user = answer["body"]["user_id"]
            response = await client.get(f"/users/{user}/tasks/{task_id}")
            # Every field that release answered, as it answered it (later versions may add some).
            found = response.json()
            assert {name: found[name] for name in answer["body"]} == answer["body"]
            assert response.headers["etag"] == answer["etag"]
        for user, counts in answers["counts"].items():
            assert (await client.get(f"/users/{user}/tasks/counts")).json() == counts
        # The next write to a task goes on from the version that release answered.
        task_id, answer = next(iter(answers["tasks"].items()))
        url = f"/users/{answer['body']['user_id']}/tasks/{task_id}"
        toggled = await client.patch(f"{url}/complete", headers={"If-Match": answer["etag"]})
        assert toggled.status_code == 200
        assert toggled.headers["etag"] == f'"{int(answer["etag"].strip(chr(34))) + 1}"'


async def test_the_keys_of_the_previous_release_still_replay(upgraded_url: str) -> None:
    live = [
        key
        for key in RELEASE["rows"]["idempotency_keys"]
        if key["key"].startswith("key-")  # the keyed creates of the workload
    ]
    assert live
    async with serving(upgraded_url) as client:
        for key in live:
            stored = json.loads(key["body"])
            request = {name: stored[name] for name in ("title", "description", "is_completed")}
            response = await client.post(
                f"/users/{key['user_id']}/tasks",
                json=request,
                headers={"Idempotency-Key": key["key"]},
            )
            assert response.status_code == 201, response.text
            assert response.headers["idempotent-replayed"] == "true"
            assert response.headers["location"] == key["location"]  # as that release gave it
            replayed = response.json()
            assert {name: replayed[name] for name in stored} == stored
