"""A list of a user's tasks, defined once: its filters, its order, its search, and its pages.

Everything a listing is made of comes from `FILTERS` and the order: the statement's conditions and
arguments, the `Link` header's query string, and the check in its cursors. A new filter is one
entry there (and its query parameter in the contract).

Lists walk the index on (user_id, created_at, id), forwards or backwards, with no sort; a search
walks the same index and reads the user's tasks until the page is full. Pages are keyset pages:
a cursor holds the (created_at, id) of the last task of its page, read from that task's JSON.
"""

import base64
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode
from uuid import UUID

import orjson

from app.db.sql import Statement
from app.problems import CursorOfAnotherListing
from app.tasks.statements import TASK_COLUMNS
from app.tasks.urls import tasks_url


def contains(text: str) -> str:
    """An ILIKE pattern for `text` anywhere: its own %, _ and \\ match only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _boolean(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True, slots=True)
class Filter:
    """A query parameter that keeps some of the tasks: `condition` is SQL over a task's columns,
    with the parameter as `:name`."""

    name: str
    condition: str
    to_sql: Callable[[Any], object] = lambda value: value  # the statement's argument
    to_query: Callable[[Any], str] = str  # the value as the Link header spells it


FILTERS = (
    Filter("completed", "is_completed = :completed", to_query=_boolean),
    Filter("q", "(title ILIKE :q OR description ILIKE :q)", to_sql=contains),
)


@cache
def _statement(filters: tuple[str, ...], newest_first: bool, after: bool) -> Statement:
    """One statement per combination of filters, order and cursor, so that each gets its own
    plan. The page is rendered as JSON in one pass over it."""
    conditions = ["user_id = :user_id"]
    conditions += [f.condition for f in FILTERS if f.name in filters]
    direction = " DESC" if newest_first else ""
    if after:
        conditions.append(
            f"(created_at, id) {'<' if newest_first else '>'} (:after_created_at, :after_id)"
        )
    return Statement(f"""
SELECT row_to_json(task)::text AS body
FROM (
    SELECT {", ".join(TASK_COLUMNS)} FROM tasks
    WHERE {" AND ".join(conditions)}
    ORDER BY created_at{direction}, id{direction}
    LIMIT :limit
) task""")


@dataclass(frozen=True, slots=True)
class Listing:
    """One user's list request: its order, the filters given, and the page size."""

    user_id: str
    limit: int
    order: str | None = None  # as given: None lists oldest first
    filters: dict[str, object] = field(default_factory=dict)  # by name; None is not given

    def __post_init__(self) -> None:
        unknown = self.filters.keys() - {f.name for f in FILTERS}
        if unknown:
            raise ValueError(f"no such filters: {sorted(unknown)}")

    @property
    def newest_first(self) -> bool:
        return self.order == "newest"

    def _given(self) -> list[tuple[Filter, object]]:
        return [(f, self.filters[f.name]) for f in FILTERS if self.filters.get(f.name) is not None]

    def query(self, cursor: str | None) -> tuple[Statement, dict[str, object]]:
        """The statement for the page after `cursor` (the first without), and its arguments: one
        task more than the page holds, to tell whether another page follows."""
        given = self._given()
        arguments: dict[str, object] = {"user_id": self.user_id, "limit": self.limit + 1}
        arguments |= {f.name: f.to_sql(value) for f, value in given}
        if cursor is not None:
            arguments["after_created_at"], arguments["after_id"] = self.decode(cursor)
        names = tuple(f.name for f, _ in given)
        return _statement(names, self.newest_first, cursor is not None), arguments

    def next_page(self, last: str) -> str:
        """The URL of the page after the task `last` (its JSON), every parameter kept."""
        task = orjson.loads(last)
        cursor = self.encode(datetime.fromisoformat(task["created_at"]), UUID(task["id"]))
        params = {"limit": str(self.limit), "cursor": cursor}
        if self.order is not None:
            params["order"] = self.order
        params |= {f.name: f.to_query(value) for f, value in self._given()}
        return f"{tasks_url(self.user_id)}?{urlencode(params, quote_via=quote)}"

    # Cursors: 24 bytes of position (microseconds since the epoch, the task's id), a 3-byte mark
    # that says the cursor is one of ours, and a 3-byte check of the listing it belongs to: 40
    # base64url characters. A cursor of ours from another listing is refused (422) rather than
    # read as a position in this one. Any other string the contract allows (32 or 40 characters,
    # the cursors of earlier versions among them) is read as a position alone. Timestamps outside
    # what Python can hold are clamped, which keeps their place in the order.

    def _identity(self) -> bytes:
        named = [(f.name, f.to_query(value)) for f, value in self._given()]
        return repr((self.newest_first, named)).encode()

    def encode(self, created_at: datetime, task_id: UUID) -> str:
        micros = (created_at - _EPOCH) // timedelta(microseconds=1)
        position = struct.pack(">q", micros) + task_id.bytes
        check = _digest(position + self._identity())
        return base64.urlsafe_b64encode(position + _digest(position) + check).decode()

    def decode(self, cursor: str) -> tuple[datetime, UUID]:
        raw = base64.urlsafe_b64decode(cursor)
        position, mark, check = raw[:24], raw[24:27], raw[27:]
        if mark == _digest(position) and check != _digest(position + self._identity()):
            raise CursorOfAnotherListing
        (micros,) = struct.unpack(">q", position[:8])
        micros = min(max(micros, _MIN_MICROS), _MAX_MICROS)
        return _EPOCH + timedelta(microseconds=micros), UUID(bytes=position[8:])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MICROS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=3, person=b"task-cursor").digest()
