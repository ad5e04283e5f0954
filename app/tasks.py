"""The contract's operations over PostgreSQL, one SQL statement each (a create with an
Idempotency-Key too: see app/idempotency.py).

Every statement names the owner (`WHERE user_id = $1 AND id = $2`): a task of another user is
indistinguishable from one that does not exist. PostgreSQL renders each task as the contract's
JSON, which goes out as it is: no task is decoded into Python fields and encoded again.
"""

import itertools
from dataclasses import dataclass
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import quote, urlencode
from uuid import UUID

import asyncpg
from starlette.responses import Response

from app.completion import EPOCH, SET_ALL_COMPLETION, current, current_state, first_mark
from app.db import Database
from app.idempotency import Answer, create_once, create_once_statement, fingerprint
from app.pagination import Listing, decode_cursor, encode_cursor
from app.preconditions import etag, etag_of, not_modified, writable_versions
from app.problems import OwnerBusy, PreconditionFailed, TaskLimitReached, TaskNotFound
from app.search import contains, search_keys
from generated.handlers import OperationHandlers
from generated.models import (
    CompletionForAll,
    DeletedCount,
    Health,
    Status,
    Task,
    TaskCounts,
    TaskInput,
    TaskOrder,
    TaskPatch,
    UpdatedCount,
)

COLUMNS = "id, user_id, title, description, is_completed, completed_at, created_at, updated_at"
CONTRACT = COLUMNS.split(", ")

# One task as the contract's JSON, from its own columns: what a write returns, the task being
# current after it. Timestamps render as RFC 3339 in the session's time zone, which the pool
# sets to UTC.
TASK_JSON = (
    "(SELECT row_to_json(task) FROM (SELECT "
    + ", ".join(f"tasks.{column}" for column in CONTRACT)
    + ") task)::text"
)


def _as_it_is(task: str) -> str:
    """The contract's columns of `task` as they are now (app/completion.py; f joined)."""
    fields = current(task)
    return ", ".join(
        f"{fields[column]} AS {column}" if column in fields else f"{task}.{column}"
        for column in CONTRACT
    )


GET = f"""
SELECT (SELECT row_to_json(task) FROM (SELECT {", ".join(f"v.{c}" for c in CONTRACT)}) task)::text,
    v.version
FROM (
    SELECT {_as_it_is("t")}, {current("t")["version"]} AS version
    FROM tasks t {first_mark("t")}
    WHERE t.user_id = $1 AND t.id = $2
) v"""


# The owner's row counts the tasks: the upsert that counts the new one also locks the row, so
# concurrent creates of one user take turns and the limit ($6) holds; no task is made past it.
def _owner(condition: str) -> str:
    return f"""owner AS (
    INSERT INTO users (id, email, task_count, completed_count)
    SELECT $1, $5, 1, $4::boolean::int WHERE {condition}
    ON CONFLICT (id) DO UPDATE SET task_count = users.task_count + 1,
        completed_count = users.completed_count + $4::boolean::int
    WHERE users.task_count < $6
    RETURNING id, completion_epoch
)"""


# The new task, answered with its JSON, its location and its entity tag.
INSERT_TASK = f"""
INSERT INTO tasks (user_id, title, description, is_completed, completed_at, completion_epoch)
SELECT id, $2::varchar, $3::varchar, $4::boolean, CASE WHEN $4 THEN now() END, completion_epoch
FROM owner
RETURNING {TASK_JSON} AS body, '/users/' || user_id || '/tasks/' || id AS location,
    {etag_of("version")} AS etag"""

CREATE = f"WITH {_owner('true')}{INSERT_TASK}"


def _creating(condition: str) -> str:
    """The create as CTEs, made when `condition` holds; `created` holds its answer."""
    return f"{_owner(condition)},\ncreated AS ({INSERT_TASK}\n)"


# The same, once per Idempotency-Key ($7, with the request's fingerprint $8 and the key's ttl $9).
CREATE_ONCE = create_once_statement(_creating, 7)

# The owner's row, locked: the latest version, whatever committed since the statement began.
OWNER = """owner AS (
    SELECT completion_epoch, task_count, completed_count FROM users WHERE id = $1
    FOR NO KEY UPDATE
)"""

# A write to one task locks its owner's row first, then the task (`locked`: the latest version,
# however many writes committed since the statement began), and reads it as it is now
# (`current`) from that locked row. Holding the owner's row orders the write with complete all
# and reopen all, and with the owner's counts. `seen` says whether the statement's snapshot holds
# the owner's last mark: a mark made after the snapshot was taken cannot be read, and the write
# is run again.
CURRENT = f"""{OWNER},
locked AS (
    SELECT * FROM tasks
    WHERE user_id = $1 AND id = $2 AND (SELECT completion_epoch FROM owner) IS NOT NULL
    FOR UPDATE
),
current AS (
    SELECT t.id, t.title, t.description,
        {", ".join(f"{sql} AS {name}" for name, sql in current("t").items())},
        (SELECT completion_epoch FROM owner) = {EPOCH} AS seen
    FROM locked t {first_mark("t")}
)"""

# Completing keeps an earlier completion time, or sets now; reopening clears it.
COMPLETED_AT = (
    "CASE WHEN {flag} THEN coalesce(CASE WHEN current.is_completed THEN current.completed_at END,"
    " now()) END"
)
# Every write moves updated_at forward (even two writes within one clock tick) and the version,
# the entity tag, and catches the task up to its owner's epoch.
CHANGED = (
    "updated_at = greatest(now(), current.updated_at + interval '1 microsecond'),"
    f" version = current.version + 1, completion_epoch = {EPOCH}"
)

# A write's own counts: `moved` (+1, 0 or -1) for the completed tasks, or the deleted tasks.
# Both counts are set, from the locked `owner`, the latest row: an UPDATE computes the new row
# from the version its snapshot holds and checks the row's CHECK on it before it finds a newer
# one, so a count taken (or kept) from that version can fail the check for a moment that never
# existed.
RECOUNT = """counted AS (
    UPDATE users SET task_count = owner.task_count,
        completed_count = owner.completed_count + (SELECT moved FROM written)
    FROM owner WHERE users.id = $1 AND EXISTS (SELECT FROM written WHERE moved <> 0)
)"""
UNCOUNT = """counted AS (
    UPDATE users SET task_count = owner.task_count - (SELECT count(*) FROM written),
        completed_count = owner.completed_count
            - (SELECT count(*) FILTER (WHERE is_completed) FROM written)
    FROM owner WHERE users.id = $1 AND EXISTS (SELECT FROM written)
)"""


# Marks made while a write waited, in a row, before it answers 503.
MARK_RACES = 5


class Write(NamedTuple):
    """A write to one task, as it is and guarded by If-Match.

    The guarded one changes the task only when its version is one of the last parameter, in the
    same statement, so two writers holding one entity tag cannot both succeed. Both answer one
    row: what the write returns (NULLs when nothing was written), whether the task exists (a 412
    or a 404), and `seen`.
    """

    plain: str
    guarded: str


def _write(statement: str, arity: int, *, then: str) -> Write:
    def build(guard: str) -> str:
        return f"""
WITH {CURRENT},
written AS ({statement.format(guard=guard)}),
{then}
SELECT written.*, found, seen FROM (
    SELECT EXISTS (SELECT FROM current) AS found, coalesce((SELECT seen FROM current), true) AS seen
) AS task LEFT JOIN written ON true"""

    return Write(
        plain=build(""), guarded=build(f" AND current.version = ANY(${arity + 1}::bigint[])")
    )


def _update(sets: str, arity: int) -> Write:
    return _write(
        f"""
UPDATE tasks SET {sets}, {CHANGED}
FROM current WHERE tasks.id = current.id AND current.seen{{guard}}
RETURNING {TASK_JSON}, tasks.version,
    tasks.is_completed::int - current.is_completed::int AS moved""",
        arity,
        then=RECOUNT,
    )


REPLACE = _update(
    "title = $3, description = $4, is_completed = $5,"
    f" completed_at = {COMPLETED_AT.format(flag='$5')}",
    arity=5,
)

# $3, $5, $7 say whether title, description and is_completed were given; $4, $6, $8 are them.
UPDATE = _update(
    f"""title = CASE WHEN $3 THEN $4::varchar ELSE current.title END,
    description = CASE WHEN $5 THEN $6::varchar ELSE current.description END,
    is_completed = CASE WHEN $7 THEN $8::boolean ELSE current.is_completed END,
    completed_at = CASE WHEN $7 THEN {COMPLETED_AT.format(flag="$8")}
        ELSE current.completed_at END""",
    arity=8,
)

TOGGLE = _update(
    "is_completed = NOT current.is_completed,"
    " completed_at = CASE WHEN current.is_completed THEN NULL ELSE now() END",
    arity=2,
)

DELETE = _write(
    "DELETE FROM tasks USING current WHERE tasks.id = current.id AND current.seen{guard}"
    " RETURNING tasks.id, current.is_completed",
    arity=2,
    then=UNCOUNT,
)

# How many of the user's tasks are in the state $2, from the owner's counts: when they say none,
# the user's tasks are not read at all.
AWAY_FROM = "CASE WHEN $2 THEN completed_count ELSE task_count - completed_count END"

# The user's tasks in the state $2, deleted in one statement; answers how many, and `seen`.
DELETE_ALL = f"""
WITH {OWNER},
written AS (
    DELETE FROM tasks
    WHERE user_id = $1 AND {current_state("tasks")} = $2
        AND (SELECT {AWAY_FROM} FROM users WHERE id = $1) > 0
        AND (SELECT completion_epoch FROM owner) = {EPOCH}
    RETURNING $2 AS is_completed
),
{UNCOUNT}
SELECT count(*), (SELECT completion_epoch FROM owner) IS NOT DISTINCT FROM {EPOCH} FROM written"""

# The owner's row holds both counts; a user with no row has no tasks.
COUNT = """
SELECT coalesce(
    (SELECT format('{"total":%s,"open":%s,"completed":%s}',
                   task_count, task_count - completed_count, completed_count)
     FROM users WHERE id = $1),
    '{"total":0,"open":0,"completed":0}')"""


class ListShape(NamedTuple):
    filtered: bool
    searched: bool
    keyed: bool  # a search with index keys to look up (app/search.py)
    after_cursor: bool
    newest_first: bool


def _list_query(shape: ListShape) -> str:
    """One statement per shape, so that each gets its own plan.

    Lists walk (user_id, created_at, id) forwards or backwards, with no sort; a search with keys
    reads the user's entries of the search index, one without walks the user's tasks.
    """
    # The search keys name the owner already; the owner's index would only add a second bitmap
    # to AND with, so the owner is a plain filter there.
    conditions = ["(user_id = $1) IS TRUE" if shape.keyed else "user_id = $1"]
    number = 3  # $1 is the owner, $2 the limit
    if shape.filtered:
        conditions.append(f"{current_state('tasks')} = ${number}")
        number += 1
    if shape.keyed:
        conditions.append(f"task_search_trigrams(user_id, title, description) @> ${number}::text[]")
        number += 1
    if shape.searched:
        conditions.append(f"(title ILIKE ${number} OR description ILIKE ${number})")
        number += 1
    if shape.after_cursor:
        after = "<" if shape.newest_first else ">"
        conditions.append(f"(created_at, id) {after} (${number}, ${number + 1})")
    direction = " DESC" if shape.newest_first else ""
    order = f"created_at{direction}, id{direction}"
    page = (
        f"SELECT {COLUMNS}, version, completion_epoch FROM tasks"
        f" WHERE {' AND '.join(conditions)} ORDER BY {order} LIMIT $2"
    )
    # row_to_json over the page at once: 2.4 ms per 1,000 rows where a per-row subquery takes
    # 4.4 ms and json_build_object 3.3 ms.
    return f"""
SELECT row_to_json(v)::text, created_at, id FROM (
    SELECT {_as_it_is("p")} FROM ({page}) p {first_mark("p")}
) v ORDER BY {order}"""


LIST = {
    shape: _list_query(shape)
    for shape in (ListShape(*flags) for flags in itertools.product((False, True), repeat=5))
    if shape.searched or not shape.keyed
}


def _completed(body: TaskInput) -> bool:
    """A TaskInput that leaves is_completed out describes an open task."""
    return body.is_completed is True


def _task(row: asyncpg.Record) -> Response:
    """One task's answer: its JSON, and its version as the entity tag."""
    return _json(row[0], headers={"ETag": etag(row[1])})


def _json(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, headers=headers, media_type="application/json")


@dataclass(frozen=True, slots=True)
class Policy:
    """What a deployment decides about writes."""

    require_if_match: bool = False
    idempotency_ttl: float = 24 * 3600.0
    max_tasks_per_user: int = 10_000


class TaskHandlers(OperationHandlers):
    def __init__(
        self, database: Database, policy: Policy = Policy(), *, email: str | None = None
    ) -> None:
        self.database = database
        self.policy = policy
        self.email = email  # the owner's, from the token; stored when the user row is created

    async def get_health(self) -> Health:
        return Health(status=Status.ok)

    async def get_readiness(self) -> Health:
        await self.database.fetchval("SELECT 1")
        return Health(status=Status.ready)

    async def list_tasks(
        self,
        *,
        limit: int,
        cursor: str | None,
        completed: bool | None,
        order: TaskOrder | None,
        q: str | None,
        user_id: str,
    ) -> list[Task] | Response:
        listing = Listing(order is TaskOrder.newest, completed, q)
        args: list[object] = [user_id, limit + 1]
        if completed is not None:
            args.append(completed)
        keys = search_keys(user_id, q) if q is not None else []
        if keys:
            args.append(keys)
        if q is not None:
            args.append(contains(q))
        if cursor is not None:
            args.extend(decode_cursor(cursor, listing))
        shape = ListShape(
            completed is not None,
            q is not None,
            bool(keys),
            cursor is not None,
            listing.newest_first,
        )
        rows = await self.database.fetch(LIST[shape], *args)
        headers = None
        if len(rows) > limit:
            last = rows[limit - 1]
            params = {"limit": limit, "cursor": encode_cursor(last[1], last[2], listing)}
            if completed is not None:
                params["completed"] = "true" if completed else "false"
            if order is not None:
                params["order"] = order.value
            if q is not None:
                params["q"] = q
            next_page = f"/users/{user_id}/tasks?{urlencode(params, quote_via=quote)}"
            headers = {"Link": f'<{next_page}>; rel="next"'}
            rows = rows[:limit]
        return _json(f"[{','.join(row[0] for row in rows)}]", headers=headers)

    async def count_tasks(self, *, user_id: str) -> TaskCounts | Response:
        counts = await self.database.fetchval(COUNT, user_id)
        assert isinstance(counts, str)
        return _json(counts)

    async def set_all_tasks_completion(
        self, *, user_id: str, body: CompletionForAll
    ) -> UpdatedCount | Response:
        updated = await self.database.fetchval(
            SET_ALL_COMPLETION, user_id, body.is_completed, row=user_id
        )
        return _json(f'{{"updated":{updated}}}')

    async def delete_tasks(self, *, completed: bool, user_id: str) -> DeletedCount | Response:
        row = await self._until_seen(DELETE_ALL, (user_id, completed), user_id)
        return _json(f'{{"deleted":{row[0]}}}')

    async def create_task(
        self, *, idempotency_key: str | None, user_id: str, body: TaskInput
    ) -> Task | Response:
        request = (body.title, body.description, _completed(body))
        limit = self.policy.max_tasks_per_user
        values = (user_id, *request, self.email, limit)
        if idempotency_key is None:
            row = await self.database.fetchrow(CREATE, *values)
            outcome = None if row is None else (Answer(201, *row), False)
        else:
            outcome = await create_once(
                self.database,
                CREATE_ONCE,
                *values,
                key=idempotency_key,
                request=fingerprint(*request),
                ttl=self.policy.idempotency_ttl,
            )
        if outcome is None:
            raise TaskLimitReached(limit)
        answer, replayed = outcome
        headers = {"Location": answer.location, "ETag": answer.etag}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return _json(answer.body, answer.status, headers)

    async def get_task(
        self, *, if_none_match: str | None, user_id: str, task_id: UUID
    ) -> Task | Response:
        row = await self._read(user_id, task_id)
        current = etag(row[1])
        if not_modified(if_none_match, current):
            return Response(status_code=HTTPStatus.NOT_MODIFIED, headers={"ETag": current})
        return _task(row)

    async def replace_task(
        self, *, if_match: str | None, user_id: str, task_id: UUID, body: TaskInput
    ) -> Task | Response:
        return _task(
            await self._write(
                REPLACE, if_match, user_id, task_id, body.title, body.description, _completed(body)
            )
        )

    async def update_task(
        self, *, if_match: str | None, user_id: str, task_id: UUID, body: TaskPatch
    ) -> Task | Response:
        given = body.model_fields_set
        if not given:  # nothing to change: the task as it is, if the precondition holds
            versions = writable_versions(if_match, required=self.policy.require_if_match)
            row = await self._read(user_id, task_id)
            if versions is not None and row[1] not in versions:
                raise PreconditionFailed
            return _task(row)
        row = await self._write(
            UPDATE,
            if_match,
            user_id,
            task_id,
            "title" in given,
            body.title,
            "description" in given,
            body.description,
            "is_completed" in given,
            body.is_completed,
        )
        return _task(row)

    async def delete_task(self, *, if_match: str | None, user_id: str, task_id: UUID) -> None:
        await self._write(DELETE, if_match, user_id, task_id)

    async def toggle_task_completion(
        self, *, if_match: str | None, user_id: str, task_id: UUID
    ) -> Task | Response:
        return _task(await self._write(TOGGLE, if_match, user_id, task_id))

    async def _read(self, user_id: str, task_id: UUID) -> asyncpg.Record:
        row = await self.database.fetchrow(GET, user_id, task_id)
        if row is None:
            raise TaskNotFound
        return row

    async def _write(
        self, write: Write, if_match: str | None, user_id: str, task_id: UUID, *args: object
    ) -> asyncpg.Record:
        """One write statement, guarded by If-Match when the request has one.

        Writes to one user's tasks take turns (app/db.py): behind the lock on the owner's row,
        only one of them waits holding a connection.
        """
        versions = writable_versions(if_match, required=self.policy.require_if_match)
        if versions is None:
            statement, values = write.plain, (user_id, task_id, *args)
        else:
            statement, values = write.guarded, (user_id, task_id, *args, versions)
        row = await self._until_seen(statement, values, user_id)
        if row[0] is None:
            raise PreconditionFailed if row[-2] else TaskNotFound
        return row

    async def _until_seen(
        self, statement: str, values: tuple[object, ...], user_id: str
    ) -> asyncpg.Record:
        """Runs a statement that answers `seen` last again while its snapshot missed a mark that
        its owner's row already holds: one made while it waited for that row."""
        for _ in range(MARK_RACES):
            row = await self.database.fetchrow(statement, *values, row=user_id)
            assert row is not None  # these statements always answer one row
            if row[-1]:
                return row
        raise OwnerBusy
