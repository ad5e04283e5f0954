"""The bench's rows, its targets, and its report in reports/bench/ (JSON and Markdown)."""

import json
import os
import statistics
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil


@dataclass
class Run:
    """One wrk run."""

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
    server_cpu_us: int | None
    database_cpu_us: int | None
    wrk_cpu_us: int | None


@dataclass
class Lone:
    """A call made one at a time, repeated."""

    operation: str
    tasks: int
    calls: int
    p50_ms: float
    max_ms: float
    rows: int  # tasks changed, or answered

    def row(self) -> str:
        return (
            f"{self.operation:<48} {self.tasks:>7,} {self.calls:>5} {self.p50_ms:>8.1f} "
            f"{self.max_ms:>8.1f} {self.rows:>6}"
        )


HEADER = (
    f"{'target':<10} {'scenario':<10} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
    f"{'p99 ms':>8} {'non-2xx':>8} {'RSS MB':>7} {'srv us':>7} {'db us':>6} {'wrk us':>6}"
)
LONE_HEADER = f"{'alone':<48} {'tasks':>7} {'calls':>5} {'p50 ms':>8} {'max ms':>8} {'rows':>6}"


def _rss_mb(process: subprocess.Popen[bytes]) -> float:
    parent = psutil.Process(process.pid)
    workers = parent.children(recursive=True) or [parent]
    python = [p for p in workers if "python" in p.name().lower()] or [parent]
    rss: int = max(p.memory_info().rss for p in python)
    return rss / 2**20


def row(r: Run) -> str:
    return (
        f"{r.target:<10} {r.scenario:<10} {r.connections:>5} {r.requests_per_s:>9.1f} "
        f"{r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {r.p99_ms:>8.2f} {r.non_2xx + r.socket_errors:>8} "
        f"{r.rss_mb:>7.1f} {_cpu(r.server_cpu_us):>7} {_cpu(r.database_cpu_us):>6} "
        f"{_cpu(r.wrk_cpu_us):>6}"
    )


def _cpu(us: int | None) -> str:
    return "-" if us is None else str(us)


def measured(
    target: str,
    scenario: str,
    connections: int,
    data: dict[str, Any],
    process: subprocess.Popen[bytes],
) -> Run:
    result = Run(
        target=target,
        scenario=scenario,
        connections=connections,
        requests_per_s=round(data["requests_per_s"], 1),
        p50_ms=data["p50_ms"],
        p95_ms=data["p95_ms"],
        p99_ms=data["p99_ms"],
        non_2xx=data["non_2xx"],
        socket_errors=data["socket_errors"],
        rss_mb=round(_rss_mb(process), 1),
        server_cpu_us=data.get("server_cpu_us"),
        database_cpu_us=data.get("database_cpu_us"),
        wrk_cpu_us=data.get("wrk_cpu_us"),
    )
    print(row(result), flush=True)
    return result


def _median(runs: list[Run], target: str) -> float | None:
    """The median requests/s of a target's get one rounds at 100 connections."""
    values = [
        r.requests_per_s
        for r in runs
        if (r.target, r.scenario, r.connections) == (target, "get_one", 100)
    ]
    return statistics.median(values) if values else None


Check = tuple[str, bool, str]


def targets(runs: list[Run], lone: list[Lone], *, rounds: int) -> list[Check]:
    """Every target whose measurements ran."""
    checks: list[Check] = []
    for service, reference, workers, minimum in (
        ("service-1w", "ref-1w", "one worker", 0.7),
        ("service", "reference", "two workers", 0.6),
    ):
        mine, theirs = _median(runs, service), _median(runs, reference)
        if mine and theirs:
            checks.append(
                (
                    f"get one, {workers} each, 100 connections (medians of {rounds} alternating "
                    f"rounds): >= {minimum:.0%} of the reference's req/s",
                    mine / theirs >= minimum,
                    f"{mine / theirs:.0%}",
                )
            )
    for r in runs:
        if (r.target, r.scenario, r.connections) == ("service", "mixed", 100):
            checks.append(
                ("mixed: p95 <= 100 ms at 100 connections", r.p95_ms <= 100, f"{r.p95_ms:.1f} ms")
            )
    for result in lone:
        if result.tasks == 10_000:
            checks.append(
                (
                    f"{result.operation} on 10,000 tasks, alone: <= 500 ms",
                    result.max_ms <= 500,
                    f"max {result.max_ms:.0f} ms",
                )
            )
    quiet = [r.p95_ms for r in runs if r.target == "quiet"]
    for r in runs:
        if r.target.startswith("+") and quiet:
            bound = 2 * statistics.median(quiet)
            checks.append(
                (
                    f"the others' p95 while one user floods {r.target[1:]}: <= 2x quiet "
                    f"({bound:.1f} ms)",
                    r.p95_ms <= bound,
                    f"{r.p95_ms:.1f} ms",
                )
            )
    if runs:
        # A flooding user is answered 429 beyond its budget, by design.
        failed = [r for r in runs if (r.non_2xx or r.socket_errors) and r.target != "flooder"]
        checks.append(("no non-2xx answer or socket error", not failed, f"{len(failed)} runs"))
        rss = max(r.rss_mb for r in runs if not r.target.startswith("ref"))
        checks.append(("server RSS <= 150 MB per worker", rss <= 150, f"{rss:.0f} MB"))
    return checks


def layer_costs(runs: list[Run]) -> list[str]:
    """CPU time per request that each optional layer adds (observability, rate limits), from the
    medians of the one-worker rounds (one saturated core: a request costs 1 / requests per
    second)."""
    lines = []
    for target, base, what in (
        ("1w-no-log", "1w-bare", "metrics"),
        ("service-1w", "1w-no-log", "the access log, over metrics"),
        ("1w-traced", "service-1w", "traces exported over OTLP, over the default"),
        ("service-1w", "1w-unlimited", "rate limits in the worker's memory, over none"),
        ("1w-redis", "1w-unlimited", "rate limits in Redis, over none"),
    ):
        variant, against = _median(runs, target), _median(runs, base)
        if variant and against:
            cost = (1 / variant - 1 / against) * 1e6
            lines.append(f"cost of {what}: {cost:+.0f} us per request")
    return lines


def write(
    stem: Path,
    runs: list[Run],
    lone: list[Lone],
    checks: list[Check],
    costs: list[str],
    settings: dict[str, Any],
) -> Path:
    """Prints the targets and writes the report; returns its path without a suffix."""
    lines = [f"# make bench, {settings['when']}, {settings['commit']}", ""]
    lines += ["```", HEADER, *map(row, runs), "", LONE_HEADER, *(r.row() for r in lone), "```"]
    lines += ["", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {name} | {figure} | {'met' if ok else 'MISSED'} |" for name, ok, figure in checks]
    lines += ["", *costs]
    print()
    for name, ok, figure in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure}")
    for line in costs:
        print(line)
    machine = {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30)}
    document = {
        **settings,
        "machine": machine,
        "runs": [asdict(r) for r in runs],
        "alone": [asdict(r) for r in lone],
        "targets": [{"name": n, "met": ok, "figure": f} for n, ok, f in checks],
        "observability": costs,
    }
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2))
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return stem
