"""wrk runs of bench/scenario.lua, and the CPU time each costs the server, PostgreSQL and wrk."""

import contextlib
import json
import os
import re
import subprocess
from typing import Any

import psutil

from bench.servers import ROOT

DURATION = os.environ.get("BENCH_DURATION", "10s")


def started_wrk(
    port: int,
    scenario: str,
    connections: int,
    files: dict[str, str],
    duration: str = DURATION,
) -> "subprocess.Popen[str]":
    """wrk running in the background; `finished` waits for it and reads its result."""
    env = {**os.environ, **files, "SCENARIO": scenario}
    threads = min(2, connections)
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--timeout", "10s",
        "-s", str(ROOT / "bench" / "scenario.lua"), f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(running: "subprocess.Popen[str]") -> dict[str, Any]:
    stdout, stderr = running.communicate()
    match = re.search(r"^RESULT (.*)$", stdout, re.MULTILINE)
    if running.returncode or not match:
        raise SystemExit(f"wrk failed ({running.returncode}):\n{stdout}\n{stderr}")
    data: dict[str, Any] = json.loads(match.group(1))
    data["requests_per_s"] = data["requests"] / data["seconds"]
    return data


def wrk(
    port: int,
    scenario: str,
    connections: int,
    files: dict[str, str],
    duration: str = DURATION,
) -> dict[str, Any]:
    return finished(started_wrk(port, scenario, connections, files, duration))


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


def metered_wrk(
    process: subprocess.Popen[bytes],
    database: int | None,
    port: int,
    scenario: str,
    connections: int,
    files: dict[str, str],
) -> dict[str, Any]:
    """wrk, and the CPU time per request of the server, the database and wrk itself."""
    before = _usage(process, database)
    data = wrk(port, scenario, connections, files)
    after = _usage(process, database)
    per_request = 1e6 / max(data["requests"], 1)
    for name, used, was in zip(("server", "database", "wrk"), after, before, strict=True):
        data[f"{name}_cpu_us"] = (
            None if used is None or was is None else round((used - was) * per_request)
        )
    return data
