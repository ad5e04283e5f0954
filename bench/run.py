"""`make bench`: the service as deployed, under the traffic of a todo frontend (wrk), beside a bare
asyncpg reference server; bulk calls and a crafted search alone.

Loads a million tasks (bench/load.py) into its own embedded PostgreSQL (or BENCH_DATABASE_URL),
then measures, in this order, what BENCH_SCENARIOS names (all of it by default):

- `ratios`: get one, the service against bench/reference.py, with one worker each and with
  BENCH_WORKERS each, in BENCH_ROUNDS rounds whose order alternates; medians compared.
- the wrk scenarios (bench/scenario.lua) at 10 and 100 connections, BENCH_WORKERS workers:
  `mixed` (the headline: what a todo frontend sends), then each kind of request alone.
- `bulk`: complete all, reopen all and clear completed, one call at a time, on users with 1,000
  and 10,000 tasks.
- `crafted_search`: searches crafted to be slow, one at a time, on a user with 10,000 tasks.
- `rate_limits`: get one with one worker, rate limits off, in the worker's memory (the default)
  and in a Redis server of the bench's own, in alternating rounds: what they cost per request.
- `flood`: the others' traffic alone and while one user floods one operation (bench/flood.py).
- `observability` (not by default): get one with one worker, with and without metrics, access
  log and traces, in alternating rounds.

Prints the tables and the targets, writes them to reports/bench/ (JSON and Markdown), and exits
non-zero when a target is missed or nothing was measured.
"""

import asyncio
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime

from bench import report
from bench.flood import floods
from bench.load import BULK_USERS, load, refill_bulk_users, sample_ids
from bench.lone import bulk_calls, crafted_searches
from bench.servers import (
    DEFAULT_BUDGETS,
    ROOT,
    database_server,
    postmaster,
    redis_server,
    serving,
)
from bench.wrk import metered_wrk, wrk
from tests.support.databases import connect, recreate_database
from tests.support.otlp import Collector

REPORTS = ROOT / "reports" / "bench"
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))  # one per core here
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WRK_SCENARIOS = ("mixed", "get_one", "list", "counts", "create", "patch", "toggle", "search")
DEFAULT = ("ratios", "rate_limits", *WRK_SCENARIOS, "bulk", "crafted_search", "flood")
KNOWN = (*DEFAULT, "observability")


def chosen_scenarios() -> tuple[str, ...]:
    """What BENCH_SCENARIOS names, in the bench's order; a name it does not know is an error."""
    given = os.environ.get("BENCH_SCENARIOS")
    if not given:
        return DEFAULT
    names = [name.strip() for name in given.split(",") if name.strip()]
    if unknown := [name for name in names if name not in KNOWN]:
        raise SystemExit(
            f"BENCH_SCENARIOS: no scenario called {', '.join(unknown)}; known: {', '.join(KNOWN)}"
        )
    return tuple(name for name in KNOWN if name in names)


def _prepare(server_url: str) -> str:
    from app.db.migrate import upgrade

    url = asyncio.run(recreate_database(server_url, "tasks_bench"))
    upgrade(url)

    async def fill() -> None:
        async with connect(url) as connection:
            await load(connection)

    asyncio.run(fill())
    return url


def _files(url: str) -> dict[str, str]:
    """The files the wrk scenarios read: ids of the load's tasks, and search terms."""
    from bench.vocabulary import search_terms

    async def ids() -> str:
        async with connect(url) as connection:
            return await sample_ids(connection)

    REPORTS.mkdir(parents=True, exist_ok=True)
    ids_file, terms_file = REPORTS / "ids.txt", REPORTS / "terms.txt"
    ids_file.write_text(asyncio.run(ids()))
    terms_file.write_text("".join(f"{term}\n" for term in search_terms()))
    return {
        "IDS_FILE": str(ids_file),
        "TERMS_FILE": str(terms_file),
        "DELETABLE": "100000",
        "BULK_USERS": str(BULK_USERS),
    }


def _rounds(
    url: str,
    database: int | None,
    files: dict[str, str],
    variants: list[tuple[str, int, dict[str, str]]],
) -> list[report.Run]:
    """Get one at 100 connections for each (target, workers, settings), in ROUNDS rounds whose
    order rotates: no variant always runs right after the same other."""
    results = []
    for round_ in range(ROUNDS):
        start = round_ % len(variants)
        for target, workers, extra in variants[start:] + variants[:start]:
            with serving(target, url, workers, extra) as (process, port):
                wrk(port, "get_one", 10, files, duration="3s")  # warm-up
                data = metered_wrk(process, database, port, "get_one", 100, files)
                results.append(report.measured(target, "get_one", 100, data, process))
    return results


def _commit() -> str:
    """The code under test: its commit, and whether the tree differs from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head or 'unknown'}{' with changes' if changed else ''}"


def _refill_bulk_users(url: str) -> None:
    async def refill() -> None:
        async with connect(url) as connection:
            await refill_bulk_users(connection)

    asyncio.run(refill())


def main() -> int:
    scenarios = chosen_scenarios()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (make bench installs it from Debian's packages)")
    server_url, settings = database_server()
    database = postmaster(server_url)
    url = _prepare(server_url)
    files = _files(url)
    runs: list[report.Run] = []
    lone: list[report.Lone] = []
    print(report.HEADER, flush=True)
    if "ratios" in scenarios:
        runs += _rounds(
            url,
            database,
            files,
            [
                ("ref-1w", 1, {}),
                ("service-1w", 1, {}),
                ("reference", WORKERS, {}),
                ("service", WORKERS, {}),
            ],
        )
    if "rate_limits" in scenarios:
        with redis_server(REPORTS) as redis:
            runs += _rounds(
                url,
                database,
                files,
                [
                    ("service-1w", 1, {}),
                    ("1w-unlimited", 1, {"RATE_LIMIT_READS": "off", "RATE_LIMIT_WRITES": "off"}),
                    ("1w-redis", 1, {"RATE_LIMIT_STORAGE_URL": redis.url}),
                ],
            )
    if wanted := [name for name in WRK_SCENARIOS if name in scenarios]:
        with serving("service", url, WORKERS) as (process, port):
            wrk(port, "get_one", 10, files)  # pools filled, code paths hot
            for number, scenario in enumerate(wanted):
                if scenario == "mixed":
                    _refill_bulk_users(url)
                for connections in (10, 100):
                    offset = {"DELETE_OFFSET": str((2 * number + connections // 100) * 5000)}
                    data = metered_wrk(
                        process, database, port, scenario, connections, {**files, **offset}
                    )
                    runs.append(report.measured("service", scenario, connections, data, process))
    if "bulk" in scenarios or "crafted_search" in scenarios:
        print(f"\n{report.LONE_HEADER}", flush=True)
        with serving("service", url, WORKERS) as (_, port):
            if "bulk" in scenarios:
                lone += bulk_calls(port, url)
            if "crafted_search" in scenarios:
                lone += crafted_searches(port)
    if "flood" in scenarios:
        with serving("service", url, WORKERS, DEFAULT_BUDGETS) as (process, port):
            wrk(port, "get_one", 10, files)  # pools filled, code paths hot
            runs += floods(process, database, port, files)
    if "observability" in scenarios:
        traced = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{Collector(keep=False).endpoint}/v1/traces",
            "OTEL_SERVICE_NAME": "task-operations-bench",
        }
        runs += _rounds(
            url,
            database,
            files,
            [
                ("service-1w", 1, {}),
                ("1w-bare", 1, {"ACCESS_LOG": "false", "METRICS": "false"}),
                ("1w-no-log", 1, {"ACCESS_LOG": "false"}),
                ("1w-traced", 1, traced),
            ],
        )
    checks = report.targets(runs, lone, rounds=ROUNDS)
    if not runs and not lone:
        checks.append(("something was measured", False, "nothing"))
    when = datetime.now(UTC)
    path = report.write(
        REPORTS / f"bench-{when:%Y%m%dT%H%M%SZ}",
        runs,
        lone,
        checks,
        report.layer_costs(runs),
        settings={
            "when": when.isoformat(timespec="seconds"),
            "commit": _commit(),
            "scenarios": scenarios,
            "duration": os.environ.get("BENCH_DURATION", "10s"),
            "workers": WORKERS,
            "rounds": ROUNDS,
            "database_settings": settings,
        },
    )
    print(f"\nwritten to {path.relative_to(ROOT)}.json and .md")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
