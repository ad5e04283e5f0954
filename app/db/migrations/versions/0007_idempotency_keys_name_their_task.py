"""A stored idempotent answer names its task, so that a replay can take a field the contract's
Task has gained since from the task as it is now.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("task_id", sa.Uuid, nullable=True))
    # The answers stored so far name their task in their Location: /users/{user}/tasks/{id}.
    op.execute(
        "UPDATE idempotency_keys SET task_id = split_part(location, '/', 5)::uuid"
        " WHERE location ~ '^/users/[^/]+/tasks/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$'"
    )


def downgrade() -> None:
    op.drop_column("idempotency_keys", "task_id")
