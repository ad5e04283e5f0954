"""The contract's operations over PostgreSQL.

Every statement names the owner (`WHERE user_id = … AND id = …`): a task of another user is
indistinguishable from one that does not exist.
"""

from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import Response
from sqlalchemy import ColumnElement, and_, case, func, insert, literal, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.pagination import decode_cursor, encode_cursor
from app.problems import TaskNotFound
from app.tables import Task as TaskRow
from app.tables import User as UserRow
from generated.handlers import OperationHandlers
from generated.models import CompletedFilter, Health, Status, Task, TaskInput, TaskPatch

tasks = TaskRow.__table__  # type: ignore[attr-defined]
users = UserRow.__table__  # type: ignore[attr-defined]
COLUMNS = [tasks.c[name] for name in Task.model_fields]

# updated_at moves forward on every change, even two changes within one clock tick.
_NEXT_UPDATED_AT = func.greatest(
    func.now(), tasks.c.updated_at + func.make_interval(0, 0, 0, 0, 0, 0, 0.000001)
)


def _completed_at(is_completed: bool) -> ColumnElement[Any]:
    """Completing keeps an earlier completion time, or sets now; reopening clears it."""
    if not is_completed:
        return literal(None)
    return func.coalesce(case((tasks.c.is_completed, tasks.c.completed_at)), func.now())


def _owned(user_id: str, task_id: UUID) -> ColumnElement[bool]:
    return and_(tasks.c.user_id == user_id, tasks.c.id == task_id)


def _task(row: Any) -> Task:
    return Task.model_validate(dict(row._mapping))


class TaskHandlers(OperationHandlers):
    def __init__(self, session: AsyncSession, *, email: str | None = None) -> None:
        self.session = session
        self.email = email  # the owner's, from the token; stored when the user row is created

    async def get_health(self) -> Health:
        return Health(status=Status.ok)

    async def get_readiness(self) -> Health:
        await self.session.exec(select(literal(1)))
        return Health(status=Status.ready)

    async def list_tasks(
        self,
        *,
        limit: int,
        cursor: str | None,
        completed: CompletedFilter | None,
        user_id: str,
        response: Response,
    ) -> list[Task]:
        query = select(*COLUMNS).where(tasks.c.user_id == user_id)
        if completed is not None:
            query = query.where(tasks.c.is_completed == (completed is CompletedFilter.true))
        if cursor is not None:
            created_at, task_id = decode_cursor(cursor)
            query = query.where(
                tuple_(tasks.c.created_at, tasks.c.id) > tuple_(created_at, task_id)
            )
        query = query.order_by(tasks.c.created_at, tasks.c.id).limit(limit + 1)
        rows = (await self.session.exec(query)).all()
        page = [_task(row) for row in rows[:limit]]
        if len(rows) > limit:
            params: dict[str, str | int] = {
                "limit": limit,
                "cursor": encode_cursor(page[-1].created_at, page[-1].id),
            }
            if completed is not None:
                params["completed"] = completed.value
            response.headers["Link"] = f'</users/{user_id}/tasks?{urlencode(params)}>; rel="next"'
        return page

    async def create_task(self, *, user_id: str, body: TaskInput, response: Response) -> Task:
        await self.session.exec(
            pg_insert(users).values(id=user_id, email=self.email).on_conflict_do_nothing()
        )
        statement = (
            insert(tasks)
            .values(
                user_id=user_id,
                title=body.title,
                description=body.description,
                is_completed=body.is_completed,
                completed_at=func.now() if body.is_completed else None,
            )
            .returning(*COLUMNS)
        )
        task = _task((await self.session.exec(statement)).one())
        response.headers["Location"] = f"/users/{user_id}/tasks/{task.id}"
        return task

    async def get_task(self, *, user_id: str, task_id: UUID) -> Task:
        row = (await self.session.exec(select(*COLUMNS).where(_owned(user_id, task_id)))).first()
        if row is None:
            raise TaskNotFound
        return _task(row)

    async def _update(self, user_id: str, task_id: UUID, values: dict[str, Any]) -> Task:
        statement = (
            update(tasks)
            .where(_owned(user_id, task_id))
            .values(**values, updated_at=_NEXT_UPDATED_AT)
            .returning(*COLUMNS)
        )
        row = (await self.session.exec(statement)).first()
        if row is None:
            raise TaskNotFound
        return _task(row)

    async def replace_task(self, *, user_id: str, task_id: UUID, body: TaskInput) -> Task:
        return await self._update(
            user_id,
            task_id,
            {
                "title": body.title,
                "description": body.description,
                "is_completed": body.is_completed,
                "completed_at": _completed_at(body.is_completed),
            },
        )

    async def update_task(self, *, user_id: str, task_id: UUID, body: TaskPatch) -> Task:
        values: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
        if not values:
            return await self.get_task(user_id=user_id, task_id=task_id)
        if "is_completed" in values:
            values["completed_at"] = _completed_at(body.is_completed)
        return await self._update(user_id, task_id, values)

    async def delete_task(self, *, user_id: str, task_id: UUID) -> None:
        statement = tasks.delete().where(_owned(user_id, task_id)).returning(tasks.c.id)
        if (await self.session.exec(statement)).first() is None:
            raise TaskNotFound

    async def toggle_task_completion(self, *, user_id: str, task_id: UUID) -> Task:
        return await self._update(
            user_id,
            task_id,
            {
                "is_completed": ~tasks.c.is_completed,
                "completed_at": case((tasks.c.is_completed, None), else_=func.now()),
            },
        )
