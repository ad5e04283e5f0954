"""Keyset pagination: creation order, Link headers, and inserts between pages."""

import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest

from app.problems import CursorOfAnotherListing
from app.tasks.listing import Listing
from tests.conftest import LINK, create_task, listing_pages


async def test_pages_cover_every_task_in_creation_order(client: httpx.AsyncClient) -> None:
    created = [await create_task(client, title=f"task {i}") for i in range(7)]
    pages = await listing_pages(client, "/users/alice/tasks?limit=3")
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [task["id"] for page in pages for task in page] == [task["id"] for task in created]


async def test_exact_multiple_has_no_empty_last_page(client: httpx.AsyncClient) -> None:
    for i in range(4):
        await create_task(client, title=f"task {i}")
    pages = await listing_pages(client, "/users/alice/tasks?limit=2")
    assert [len(page) for page in pages] == [2, 2]


async def test_default_limit_is_100(client: httpx.AsyncClient) -> None:
    for i in range(101):
        await create_task(client, title=f"task {i}")
    response = await client.get("/users/alice/tasks")
    assert len(response.json()) == 100
    assert "limit=100" in response.headers["link"]


async def test_inserts_between_pages_appear_later(client: httpx.AsyncClient) -> None:
    first = [await create_task(client, title=f"first {i}") for i in range(3)]
    response = await client.get("/users/alice/tasks?limit=2")
    assert [task["id"] for task in response.json()] == [task["id"] for task in first[:2]]
    later = [await create_task(client, title=f"later {i}") for i in range(3)]
    next_url = LINK.match(response.headers["link"]).group("url")  # type: ignore[union-attr]
    rest = [task for page in await listing_pages(client, next_url) for task in page]
    assert [task["id"] for task in rest] == [task["id"] for task in first[2:] + later]


async def test_filter_is_kept_across_pages(client: httpx.AsyncClient) -> None:
    done = [await create_task(client, title=f"d{i}", is_completed=i % 2 == 0) for i in range(6)]
    pages = await listing_pages(client, "/users/alice/tasks?limit=2&completed=true")
    ids = [task["id"] for page in pages for task in page]
    assert ids == [task["id"] for task in done if task["is_completed"]]


async def test_newest_first_pages_backwards_through_creation_order(
    client: httpx.AsyncClient,
) -> None:
    created = [await create_task(client, title=f"task {i}") for i in range(7)]
    pages = await listing_pages(client, "/users/alice/tasks?limit=3&order=newest")
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [task["id"] for page in pages for task in page] == [t["id"] for t in reversed(created)]
    oldest = await listing_pages(client, "/users/alice/tasks?limit=3&order=oldest")
    assert [task["id"] for page in oldest for task in page] == [t["id"] for t in created]


async def test_the_link_keeps_every_parameter(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await create_task(client, title=f"50% & more #{i}", is_completed=True)
    response = await client.get(
        "/users/alice/tasks",
        params={"limit": 1, "order": "newest", "completed": "true", "q": "50% & more"},
    )
    url = LINK.match(response.headers["link"]).group("url")  # type: ignore[union-attr]
    query = parse_qs(urlsplit(url).query)
    assert {name: values[0] for name, values in query.items() if name != "cursor"} == {
        "limit": "1",
        "order": "newest",
        "completed": "true",
        "q": "50% & more",
    }
    assert len(query["cursor"][0]) == 40


@pytest.mark.parametrize(
    "other",
    [
        {"order": "newest"},
        {"completed": "true"},
        {"completed": "false"},
        {"q": "task"},
        {"q": "task", "order": "newest"},
    ],
)
async def test_a_cursor_of_another_listing_is_422(
    client: httpx.AsyncClient, other: dict[str, str]
) -> None:
    for i in range(3):
        await create_task(client, title=f"task {i}")
    first = await client.get("/users/alice/tasks", params={"limit": 1, "q": "task "})
    next_url = LINK.match(first.headers["link"]).group("url")  # type: ignore[union-attr]
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    same = await client.get(
        "/users/alice/tasks", params={"limit": 1, "q": "task ", "cursor": cursor}
    )
    assert same.status_code == 200
    response = await client.get(
        "/users/alice/tasks", params={"limit": 1, "cursor": cursor, **other}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "cursor"


async def test_any_cursor_the_contract_allows_is_accepted(client: httpx.AsyncClient) -> None:
    await create_task(client)
    for cursor in ("A" * 32, "_" * 32, "-" * 32, "z9" * 16, "A" * 40, "Zz_-" * 10):
        for order in ("oldest", "newest"):
            response = await client.get(
                "/users/alice/tasks", params={"cursor": cursor, "order": order, "q": "milk"}
            )
            assert response.status_code == 200, (cursor, order)


async def test_malformed_cursor_is_422(client: httpx.AsyncClient) -> None:
    for cursor in ("short", "A" * 33, "A" * 41, "=" * 32, "A" * 31 + "!"):
        response = await client.get("/users/alice/tasks", params={"cursor": cursor})
        assert response.status_code == 422, cursor
        assert response.json()["errors"][0]["field"] == "cursor"


def test_cursor_round_trip() -> None:
    created_at, task_id = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), uuid4()
    listing = Listing("alice", 10, order="newest", filters={"completed": False, "q": "milk"})
    cursor = listing.encode(created_at, task_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}", cursor)
    assert listing.decode(cursor) == (created_at, task_id)
    other = Listing("alice", 10, order="newest", filters={"completed": False, "q": "bread"})
    with pytest.raises(CursorOfAnotherListing):
        other.decode(cursor)
    # The same listing with another page size is the same listing.
    assert Listing("alice", 50, "newest", {"completed": False, "q": "milk"}).decode(cursor)
