"""The contract's operations over PostgreSQL, one SQL statement each (app/tasks/statements.py).

PostgreSQL renders each task as the contract's JSON, which goes out as it is: no task is decoded
into Python fields and encoded again.
"""

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from uuid import UUID

import asyncpg
from starlette.responses import Response

from app.db.database import Database
from app.db.sql import Statement
from app.problems import PreconditionFailed, TaskLimitReached, TaskNotFound
from app.tasks import statements
from app.tasks.idempotency import Answer, create_once
from app.tasks.listing import Listing
from app.tasks.preconditions import etag, not_modified, writable_versions
from app.tasks.urls import tasks_url
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


def _given(body: TaskInput) -> dict[str, object]:
    """A TaskInput's values, field by field in the contract's order; is_completed left out
    describes an open task."""
    values = {name: getattr(body, name) for name in TaskInput.model_fields}
    values["is_completed"] = body.is_completed is True
    return values


def _task(row: asyncpg.Record) -> Response:
    """One task's answer: its JSON, and its version as the entity tag."""
    return _json(row["body"], headers={"ETag": etag(row["version"])})


def _json(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, headers=headers, media_type="application/json")


@dataclass(frozen=True, slots=True)
class Policy:
    """What a deployment decides about writes."""

    require_if_match: bool = False
    idempotency_ttl: float = 24 * 3600.0
    max_tasks_per_user: int = 10_000
    max_idempotency_keys_per_user: int = 1_000


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
        await self.database.fetchval(statements.READY)
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
        listing = Listing(
            user_id,
            limit,
            order=None if order is None else order.value,
            filters={"completed": completed, "q": q},
        )
        statement, arguments = listing.query(cursor)
        rows = await self.database.fetch(statement, **arguments)
        headers = None
        if len(rows) > limit:
            next_page = listing.next_page(rows[limit - 1]["body"])
            headers = {"Link": f'<{next_page}>; rel="next"'}
            rows = rows[:limit]
        return _json(f"[{','.join(row['body'] for row in rows)}]", headers=headers)

    async def count_tasks(self, *, user_id: str) -> TaskCounts | Response:
        return _json(await self.database.fetchval(statements.COUNT, user_id=user_id))

    async def set_all_tasks_completion(
        self, *, user_id: str, body: CompletionForAll
    ) -> UpdatedCount | Response:
        updated = await self.database.fetchval(
            statements.SET_ALL_COMPLETION,
            turn=user_id,
            user_id=user_id,
            is_completed=body.is_completed,
        )
        return _json(f'{{"updated":{updated}}}')

    async def delete_tasks(self, *, completed: bool, user_id: str) -> DeletedCount | Response:
        deleted = await self.database.fetchval(
            statements.DELETE_ALL, turn=user_id, user_id=user_id, completed=completed
        )
        return _json(f'{{"deleted":{deleted}}}')

    async def create_task(
        self, *, idempotency_key: str | None, user_id: str, body: TaskInput
    ) -> Task | Response:
        request = _given(body)
        limit = self.policy.max_tasks_per_user
        owner = {
            "user_id": user_id,
            "email": self.email,
            "max_tasks": limit,
            "tasks_url": tasks_url(user_id),
        }
        answer: Answer | None
        if idempotency_key is None:
            row = await self.database.fetchrow(statements.CREATE, turn=user_id, **owner, **request)
            answer = None if row is None else Answer(201, row["body"], row["location"], row["etag"])
        else:
            answer = await create_once(
                self.database,
                owner,
                request,
                key=idempotency_key,
                ttl=self.policy.idempotency_ttl,
                max_keys=self.policy.max_idempotency_keys_per_user,
            )
        if answer is None:
            raise TaskLimitReached(limit)
        headers = {"Location": answer.location, "ETag": answer.etag}
        if answer.replayed:
            headers["Idempotent-Replayed"] = "true"
        return _json(answer.body, answer.status, headers)

    async def get_task(
        self, *, if_none_match: str | None, user_id: str, task_id: UUID
    ) -> Task | Response:
        row = await self._read(user_id, task_id)
        current = etag(row["version"])
        if not_modified(if_none_match, current):
            return Response(status_code=HTTPStatus.NOT_MODIFIED, headers={"ETag": current})
        return _task(row)

    async def replace_task(
        self, *, if_match: str | None, user_id: str, task_id: UUID, body: TaskInput
    ) -> Task | Response:
        row = await self._write(statements.REPLACE, if_match, user_id, task_id, **_given(body))
        return _task(row)

    async def update_task(
        self, *, if_match: str | None, user_id: str, task_id: UUID, body: TaskPatch
    ) -> Task | Response:
        given = body.model_fields_set
        if not given:  # nothing to change: the task as it is, if the precondition holds
            versions = writable_versions(if_match, required=self.policy.require_if_match)
            row = await self._read(user_id, task_id)
            if versions is not None and row["version"] not in versions:
                raise PreconditionFailed
            return _task(row)
        fields: dict[str, Any] = {}
        for name in TaskPatch.model_fields:
            fields[f"set_{name}"] = name in given
            fields[name] = getattr(body, name)
        row = await self._write(statements.UPDATE, if_match, user_id, task_id, **fields)
        return _task(row)

    async def delete_task(self, *, if_match: str | None, user_id: str, task_id: UUID) -> None:
        await self._write(statements.DELETE, if_match, user_id, task_id)

    async def toggle_task_completion(
        self, *, if_match: str | None, user_id: str, task_id: UUID
    ) -> Task | Response:
        return _task(await self._write(statements.TOGGLE, if_match, user_id, task_id))

    async def _read(self, user_id: str, task_id: UUID) -> asyncpg.Record:
        row = await self.database.fetchrow(statements.GET, user_id=user_id, task_id=task_id)
        if row is None:
            raise TaskNotFound
        return row

    async def _write(
        self,
        statement: Statement,
        if_match: str | None,
        user_id: str,
        task_id: UUID,
        **fields: object,
    ) -> asyncpg.Record:
        """One write to a task, guarded by If-Match when the request has one: 404 when the task
        does not exist, 412 when it exists at another version.

        Writes to one user's tasks take turns (app/db/database.py): behind the lock on the owner's
        row, only one of them waits holding a connection.
        """
        versions = writable_versions(if_match, required=self.policy.require_if_match)
        row = await self.database.fetchrow(
            statement, turn=user_id, user_id=user_id, task_id=task_id, versions=versions, **fields
        )
        assert row is not None  # these statements always answer one row
        if not row["found"]:
            raise TaskNotFound
        if not row["written"]:
            raise PreconditionFailed
        return row
