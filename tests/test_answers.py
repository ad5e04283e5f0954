"""Answers carry exactly the properties the contract documents for them, in its order: no column
leaks into an answer, and no field of the contract is missing from any projection the service
renders. (The contract's answers are open to additions, so its own checks would let an extra
field through: this test does not.)"""

from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import create_task

SPEC = yaml.safe_load(
    (Path(__file__).resolve().parent.parent / "openapi" / "task-operations.yaml").read_text()
)


def _properties(schema: str) -> list[str]:
    node = SPEC["components"]["schemas"][schema]
    properties: list[str] = []
    for part in node.get("allOf", [node]):
        if "$ref" in part:
            properties += _properties(part["$ref"].rsplit("/", 1)[1])
        properties += list(part.get("properties", {}))
    return properties


def _assert_shape(answer: Any, schema: str) -> None:
    assert list(answer) == _properties(schema), schema


async def test_every_answer_with_tasks_has_exactly_the_fields_of_task(
    client: httpx.AsyncClient,
) -> None:
    path = "/users/alice/tasks"
    answers = [await create_task(client, description="d")]
    keyed = {"Idempotency-Key": "k1"}
    for _ in range(2):  # the first answer, then its replay
        answers.append((await client.post(path, json={"title": "t"}, headers=keyed)).json())
    url = f"{path}/{answers[0]['id']}"
    answers += [
        (await client.get(url)).json(),
        (await client.put(url, json={"title": "r", "is_completed": True})).json(),
        (await client.patch(url, json={"description": None})).json(),
        (await client.patch(url, json={})).json(),
        (await client.patch(f"{url}/complete")).json(),
    ]
    for query in ({}, {"completed": "false"}, {"q": "t", "order": "newest"}, {"limit": "1"}):
        listed = await client.get(path, params=query)
        answers += listed.json()
        if link := listed.headers.get("link"):
            answers += (await client.get(link[1 : link.index(">")])).json()
    assert len(answers) > 12
    for answer in answers:
        _assert_shape(answer, "Task")


async def test_every_other_answer_has_exactly_its_documented_fields(
    client: httpx.AsyncClient,
) -> None:
    await create_task(client)
    path = "/users/alice/tasks"
    _assert_shape((await client.get(f"{path}/counts")).json(), "TaskCounts")
    _assert_shape((await client.patch(path, json={"is_completed": True})).json(), "UpdatedCount")
    _assert_shape((await client.delete(path, params={"completed": "true"})).json(), "DeletedCount")
    _assert_shape((await client.get("/health")).json(), "Health")
    _assert_shape((await client.get("/ready")).json(), "Health")


async def test_every_problem_has_exactly_the_fields_of_its_document(
    client: httpx.AsyncClient,
) -> None:
    task = await create_task(client)
    url = f"/users/alice/tasks/{task['id']}"
    for response, status in (
        (await client.get("/users/alice/tasks/0b9f5a8e-3f4c-4d8a-9a53-2c1d6f0e7b11"), 404),
        (await client.patch(url, json={}, headers={"If-Match": '"9"'}), 412),
        (await client.put(url, content=b"{", headers={"Content-Type": "application/json"}), 400),
        (await client.post(url), 405),
    ):
        assert response.status_code == status
        _assert_shape(response.json(), "Problem")
    invalid = await client.post("/users/alice/tasks", json={"title": "", "extra": 1})
    assert invalid.status_code == 422
    problem = invalid.json()
    _assert_shape(problem, "ValidationProblem")
    assert [error["field"] for error in problem["errors"]] == ["title", "title", "extra"]
    for error in problem["errors"]:
        _assert_shape(error, "FieldError")
