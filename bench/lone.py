"""Calls made one at a time, with nothing else running: the bulk operations on users with 1,000
and 10,000 tasks, and searches crafted to be slow. Each is timed from the client, as a user waits
for it."""

import asyncio
import statistics
import time
from typing import Any

import httpx

from bench.load import CRAFTED_QUERY, refill
from bench.report import Lone
from tests.support.databases import connect

BULK_REPEATS = 5
CLEAR_REPEATS = 3
SEARCH_REPEATS = 10
SIZES = (("lone-1k", 1_000), ("lone-10k", 10_000))


def _lone(operation: str, tasks: int, timings: list[tuple[float, int]]) -> Lone:
    times = [ms for ms, _ in timings]
    return Lone(
        operation=operation,
        tasks=tasks,
        calls=len(times),
        p50_ms=round(statistics.median(times), 1),
        max_ms=round(max(times), 1),
        rows=max(rows for _, rows in timings),
    )


def _timed(http: httpx.Client, method: str, path: str, **request: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    response = http.request(method, path, **request)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.json()


def _refill(url: str, user: str, tasks: int) -> None:
    async def refill_user() -> None:
        async with connect(url) as connection:
            await refill(connection, user, tasks)
            await connection.execute("VACUUM ANALYZE tasks")

    asyncio.run(refill_user())


def bulk_calls(port: int, url: str) -> list[Lone]:
    """Complete all, reopen all (alternately) and clear completed, each alone."""
    results = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        for user, tasks in SIZES:
            path = f"/users/{user}/tasks"
            completing: list[tuple[float, int]] = []
            reopening: list[tuple[float, int]] = []
            for _ in range(BULK_REPEATS):
                for state, timings in ((True, completing), (False, reopening)):
                    ms, body = _timed(http, "PATCH", path, json={"is_completed": state})
                    timings.append((ms, body["updated"]))
            clearing: list[tuple[float, int]] = []
            for _ in range(CLEAR_REPEATS):
                http.patch(path, json={"is_completed": True}).raise_for_status()
                ms, body = _timed(http, "DELETE", path, params={"completed": "true"})
                clearing.append((ms, body["deleted"]))
                _refill(url, user, tasks)
            results += [
                _lone("complete all", tasks, completing),
                _lone("reopen all", tasks, reopening),
                _lone("clear completed", tasks, clearing),
            ]
    for result in results:
        print(result.row(), flush=True)
    return results


def crafted_searches(port: int) -> list[Lone]:
    """On a user with 10,000 tasks of the largest size: a search whose every trigram each task
    holds, but no task its text; one too short to have a trigram; one that every task matches,
    a page of 50 and of 1,000."""
    searches = (
        (f"search '{CRAFTED_QUERY}': trigrams everywhere, no match", CRAFTED_QUERY, 50),
        ("search 'qz': no trigram, no match", "qz", 50),
        ("search 'ilk': every task, 50", "ilk", 50),
        ("search 'ilk': every task, 1,000", "ilk", 1000),
    )
    results = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        for operation, q, limit in searches:
            timings = []
            for _ in range(SEARCH_REPEATS):
                ms, body = _timed(
                    http, "GET", "/users/crafted-10k/tasks", params={"q": q, "limit": limit}
                )
                timings.append((ms, len(body)))
            results.append(_lone(operation, 10_000, timings))
    for result in results:
        print(result.row(), flush=True)
    return results
