"""Prometheus metrics, served at GET /metrics in the text format.

One process keeps its metrics in memory. With several workers (WORKERS > 1) app/server.py points
PROMETHEUS_MULTIPROC_DIR at a directory of its own before they start: each worker writes its
values to memory-mapped files there, and a scrape, whichever worker answers it, adds them up
(prometheus-client's multiprocess mode). The directory's state is decided once, at import.
"""

import asyncio
import os
from contextlib import suppress
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response


class Pooled(Protocol):
    def pool_usage(self) -> tuple[int, int, int, int]: ...


MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
POOL_SAMPLE_INTERVAL = 1.0  # seconds between samples of each worker's pool

REQUESTS = Counter(
    "http_requests",
    "Requests answered, by the contract's operationId, method and status.",
    ["operation_id", "method", "status"],
)
RATE_LIMIT_STORAGE_FAILURES = Counter(
    "rate_limit_storage_failures",
    "Requests let through without a rate limit because its storage (Redis) was unreachable.",
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by operationId.",
    ["operation_id"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
POOL_SIZE = Gauge(
    "db_pool_size", "Database connections the pools may open.", multiprocess_mode="livesum"
)
POOL_OPEN = Gauge("db_pool_open", "Database connections open.", multiprocess_mode="livesum")
POOL_IN_USE = Gauge(
    "db_pool_in_use", "Database connections running a statement.", multiprocess_mode="livesum"
)
POOL_WAITING = Gauge(
    "db_pool_waiting", "Requests waiting for a database connection.", multiprocess_mode="livesum"
)
DATABASE_ERRORS = Counter(
    "db_errors",
    "Database calls that failed for the database's availability: `timeout` (no answer, a lock "
    "or the pool within their bounds) or `unavailable` (no connection, or a lost one).",
    ["kind"],
)
for _kind in ("timeout", "unavailable"):
    DATABASE_ERRORS.labels(_kind)


def sample_pool(database: Pooled) -> None:
    size, open_, in_use, waiting = database.pool_usage()
    POOL_SIZE.set(size)
    POOL_OPEN.set(open_)
    POOL_IN_USE.set(in_use)
    POOL_WAITING.set(waiting)


async def sample_pool_periodically(database: Pooled) -> None:
    """Each worker's pool gauges stay current, whichever worker answers the scrape."""
    with suppress(asyncio.CancelledError):
        while True:
            sample_pool(database)
            await asyncio.sleep(POOL_SAMPLE_INTERVAL)


async def serve_metrics(request: Request) -> Response:
    sample_pool(request.state.database)
    if MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
