"""Metrics at /metrics (one process, and two workers summed) and spans (an in-memory exporter)."""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from tests.conftest import create_task, serving
from tests.support.otlp import Collector
from tests.support.servers import free_port, service

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return _samples(response.text)


async def test_requests_are_counted_and_timed_by_operation(client: httpx.AsyncClient) -> None:
    before = await _scrape(client)
    task = await create_task(client)
    for _ in range(3):
        assert (await client.get(f"/users/alice/tasks/{task['id']}")).status_code == 200
    assert (await client.get("/users/alice/tasks?limit=0")).status_code == 422
    assert (await client.get("/nowhere")).status_code == 404
    after = await _scrape(client)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    requests = "http_requests_total"
    assert grew(requests, operation_id="createTask", method="POST", status="201") == 1
    assert grew(requests, operation_id="getTask", method="GET", status="200") == 3
    assert grew(requests, operation_id="listTasks", method="GET", status="422") == 1
    assert grew(requests, operation_id="unmatched", method="GET", status="404") == 1
    assert grew(requests, operation_id="metrics", method="GET", status="200") == 1  # `before`
    duration = "http_request_duration_seconds"
    assert grew(f"{duration}_count", operation_id="getTask") == 3
    assert grew(f"{duration}_bucket", operation_id="getTask", le="+Inf") == 3
    assert grew(f"{duration}_bucket", operation_id="getTask", le="10.0") == 3
    assert grew(f"{duration}_sum", operation_id="getTask") > 0
    assert _value(after, "db_pool_size") == Settings().db_pool_size
    assert _value(after, "db_pool_open") >= 1
    assert _value(after, "db_pool_in_use") == 0
    assert _value(after, "db_pool_waiting") == 0
    assert ("db_errors_total", frozenset({("kind", "timeout")})) in after
    assert ("db_errors_total", frozenset({("kind", "unavailable")})) in after


def _wait_for_workers(base_url: str, scrape_url: str, workers: int) -> None:
    """Until every worker has started (its pool of 7 is in the sum) and answers /ready: a worker
    still starting takes no connection, so /ready alone may hear from the others only."""
    deadline = time.monotonic() + 60
    while _value(_samples(httpx.get(scrape_url).text), "db_pool_size") < 7 * workers:
        assert time.monotonic() < deadline, "the workers did not all start within 60 s"
        time.sleep(0.1)
    ready = 0
    while ready < 20:  # each worker applies (finds applied) the migrations once started
        ready = ready + 1 if httpx.get(f"{base_url}/ready").is_success else 0


def test_two_workers_answer_one_sum() -> None:
    """Whichever worker answers the scrape, it reports what both served."""
    env = {"WORKERS": "2", "MIGRATE_ON_START": "true", "DB_POOL_SIZE": "7"}
    with service("tasks_metrics", env, quiet=True) as base_url:
        _wait_for_workers(base_url, f"{base_url}/metrics", workers=2)
        for number in range(40):
            # A connection per request: the kernel hands them to both workers.
            with httpx.Client(base_url=base_url) as http:
                if number % 8 == 0:
                    created = http.post("/users/carol/tasks", json={"title": f"T{number}"})
                    assert created.status_code == 201
                else:
                    assert http.get("/users/carol/tasks").status_code == 200
        for _ in range(6):
            with httpx.Client(base_url=base_url) as http:
                samples = _samples(http.get("/metrics").text)
            requests = "http_requests_total"
            assert (
                _value(samples, requests, operation_id="createTask", method="POST", status="201")
                == 5
            )
            assert (
                _value(samples, requests, operation_id="listTasks", method="GET", status="200")
                == 35
            )
            counted = _value(
                samples, "http_request_duration_seconds_count", operation_id="listTasks"
            )
            assert counted == 35
            assert _value(samples, "db_pool_size") == 14  # each live worker's pool of 7


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_on_a_port_of_their_own(workers: int) -> None:
    """With METRICS_PORT, /metrics answers there (every worker's sum) and not on the API's port."""
    metrics_port = free_port()
    env = {
        "WORKERS": str(workers),
        "MIGRATE_ON_START": "true",
        "DB_POOL_SIZE": "7",
        "METRICS_PORT": str(metrics_port),
    }
    with service(f"tasks_metrics_port_{workers}", env, quiet=True) as base_url:
        _wait_for_workers(base_url, f"http://127.0.0.1:{metrics_port}/metrics", workers)
        for _ in range(12):
            with httpx.Client(base_url=base_url) as http:  # a connection each: every worker
                assert http.get("/users/erin/tasks").status_code == 200
        on_the_api = httpx.get(f"{base_url}/metrics")
        assert on_the_api.status_code == 404
        assert on_the_api.headers["content-type"] == "application/problem+json"
        metrics = f"http://127.0.0.1:{metrics_port}"
        assert httpx.get(f"{metrics}/users/erin/tasks").status_code == 404
        for _ in range(3):
            scraped = httpx.get(f"{metrics}/metrics")
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain; version=")
            samples = _samples(scraped.text)
            requests = "http_requests_total"
            assert (
                _value(samples, requests, operation_id="listTasks", method="GET", status="200")
                == 12
            )
            assert (
                _value(samples, requests, operation_id="unmatched", method="GET", status="404") == 1
            )
            assert (
                _value(samples, requests, operation_id="metrics", method="GET", status="200") == 0
            )
            assert _value(samples, "db_pool_size") == 7 * workers


@pytest.fixture
async def traced(
    database_url: str,
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    access = logging.getLogger("app.access")
    level = access.level
    access.setLevel(logging.INFO)  # as the server's log set-up does: its access lines are on
    try:
        async with serving(database_url, tracer_provider=provider) as http:
            access.setLevel(level)  # the app made its access log when it was created
            yield http, exporter
    finally:
        access.setLevel(level)


def _one(spans: list[ReadableSpan], kind: SpanKind) -> ReadableSpan:
    found = [span for span in spans if span.kind == kind]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


async def test_a_request_is_one_server_span_with_its_statement_as_a_child(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter],
    capfd: pytest.CaptureFixture[str],
) -> None:
    http, exporter = traced
    task = await create_task(http, "dave")
    exporter.clear()
    capfd.readouterr()

    response = await http.get(
        f"/users/dave/tasks/{task['id']}", headers={"X-Request-ID": "trace-me-1"}
    )
    assert response.status_code == 200
    spans = list(exporter.get_finished_spans())
    server = _one(spans, SpanKind.SERVER)
    statement = _one(spans, SpanKind.CLIENT)
    assert len(spans) == 2
    assert server.name == "GET /users/{user_id}/tasks/{task_id}"
    assert server.attributes is not None
    assert server.attributes["app.operation_id"] == "getTask"
    assert server.attributes["app.request_id"] == "trace-me-1"
    assert server.attributes["http.response.status_code"] == 200
    assert statement.parent is not None
    assert statement.parent.span_id == server.context.span_id
    assert statement.context.trace_id == server.context.trace_id
    assert statement.attributes is not None
    assert statement.attributes["db.system.name"] == "postgresql"
    assert statement.attributes["db.operation.name"] == "SELECT"
    assert task["id"] not in str(statement.attributes)  # the query's text, never its values

    await asyncio.sleep(0.2)  # the access log writes its lines in batches
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    line = next(line for line in lines if line["request_id"] == "trace-me-1")
    assert line["trace_id"] == format(server.context.trace_id, "032x")
    assert line["operation_id"] == "getTask"


def test_spans_reach_the_collector_that_otel_variables_name() -> None:
    collector = Collector()
    env = {
        "MIGRATE_ON_START": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_SERVICE_NAME": "task-operations-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms between exports
    }
    try:
        with service("tasks_otlp", env, quiet=True) as base_url:
            created = httpx.post(
                f"{base_url}/users/frank/tasks",
                json={"title": "Traced"},
                headers={"X-Request-ID": "exported-1"},
            )
            assert created.status_code == 201
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                names = {name for name, values in collector.spans if values.get("app.request_id")}
                if "POST /users/{user_id}/tasks" in names:
                    break
                time.sleep(0.1)
    finally:
        collector.close()
    server = [
        values for name, values in collector.spans if values.get("app.request_id") == "exported-1"
    ]
    assert len(server) == 1
    assert server[0]["app.operation_id"] == "createTask"
    assert any(values.get("db.operation.name") == "INSERT" for _, values in collector.spans)
    assert collector.services == {"task-operations-under-test"}
