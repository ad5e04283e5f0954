"""What operators rely on: readiness, database outages, restarts, query plans."""

import httpx

from tests.conftest import Sent, create_task, serving


async def test_database_down_is_503_with_retry_after_and_health_stays_up() -> None:
    async with serving("postgresql://postgres@127.0.0.1:1/nothing") as client:
        assert (await client.get("/health")).status_code == 200
        for response in (
            await client.get("/ready"),
            await client.get("/users/alice/tasks"),
            await client.post("/users/alice/tasks", json={"title": "x"}),
        ):
            assert response.status_code == 503
            assert response.headers["retry-after"] == "2"
            assert response.headers["content-type"] == "application/problem+json"
            assert "127.0.0.1" not in response.text


async def test_tasks_survive_a_restart(client: httpx.AsyncClient, database_url: str) -> None:
    task = await create_task(client)
    async with serving(database_url) as restarted:
        response = await restarted.get(f"/users/alice/tasks/{task['id']}")
        assert response.json() == task


async def test_every_operation_is_one_statement(client: httpx.AsyncClient, sent: Sent) -> None:
    task = await create_task(client)
    assert len(sent) == 1  # the owner's row and the task, in one statement
    url = f"/users/alice/tasks/{task['id']}"
    for method, target, body, headers, status in (
        ("GET", url, None, {}, 200),
        ("GET", url, None, {"If-None-Match": '"1"'}, 304),
        ("PUT", url, {"title": "t"}, {}, 200),
        ("PATCH", url, {"title": "u"}, {"If-Match": '"2"'}, 200),
        ("PATCH", url + "/complete", None, {"If-Match": '"3", "4"'}, 200),
        ("PATCH", url, {}, {"If-Match": "*"}, 200),
        ("GET", "/users/alice/tasks?limit=1", None, {}, 200),
        ("GET", "/users/alice/tasks?completed=true", None, {}, 200),
        ("GET", "/users/alice/tasks?q=t&order=newest", None, {}, 200),
        ("GET", "/users/alice/tasks/counts", None, {}, 200),
        ("PATCH", "/users/alice/tasks", {"is_completed": True}, {}, 200),
        ("DELETE", "/users/alice/tasks?completed=false", None, {}, 200),
        ("DELETE", url, None, {"If-Match": '"4"'}, 204),
    ):
        sent.clear()
        response = await client.request(method, target, json=body, headers=headers)
        assert response.status_code == status, (method, target, headers, response.text)
        assert len(sent) == 1, (method, target, sent)
    sent.clear()
    assert (await client.get("/health")).status_code == 200
    assert sent == []


async def test_a_keyed_create_is_one_statement(client: httpx.AsyncClient, sent: Sent) -> None:
    headers = {"Idempotency-Key": "k-1"}
    created = await client.post("/users/alice/tasks", json={"title": "x"}, headers=headers)
    assert created.status_code == 201
    assert len(sent) == 1
    first = sent[0].query
    sent.clear()
    replay = await client.post("/users/alice/tasks", json={"title": "x"}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert [statement.query for statement in sent] == [first]  # the same statement replays
