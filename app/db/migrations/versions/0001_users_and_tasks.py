"""Create users and tasks.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint(
            "char_length(id) BETWEEN 1 AND 64 AND id ~ '^[A-Za-z0-9_-]+$'", name="users_id_format"
        ),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "user_id",
            sa.String(64),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("is_completed", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint(
            "char_length(title) BETWEEN 1 AND 200 AND title ~ '[^\\t\\n\\r ]'",
            name="tasks_title_bounds",
        ),
        sa.CheckConstraint(
            "description IS NULL OR char_length(description) <= 1000",
            name="tasks_description_bounds",
        ),
        sa.CheckConstraint(
            "is_completed = (completed_at IS NOT NULL)", name="tasks_completed_at_matches"
        ),
    )
    op.create_index("tasks_user_created_id", "tasks", ["user_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("tasks_user_created_id", table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("users")
