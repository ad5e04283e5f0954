"""Substring search over titles and descriptions; each user's task count, for the limit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Trigrams serve ILIKE '%…%'; btree_gin lets the same GIN index hold user_id, so a search
    # looks only at the user's matching tasks, however many tasks other users have.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.create_index(
        "tasks_search",
        "tasks",
        ["user_id", "title", "description"],
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops", "description": "gin_trgm_ops"},
    )
    # Room on every page for the next version of its rows: a write that leaves the indexed
    # columns alone (a toggle, complete all) stays on the page and touches no index, the trigram
    # index above included. Applies to pages written from now on.
    op.execute("ALTER TABLE tasks SET (fillfactor = 80)")
    op.add_column(
        "users", sa.Column("task_count", sa.Integer, nullable=False, server_default=sa.text("0"))
    )
    op.execute(
        "UPDATE users SET task_count = counted.tasks FROM "
        "(SELECT user_id, count(*) AS tasks FROM tasks GROUP BY user_id) counted "
        "WHERE users.id = counted.user_id"
    )
    op.create_check_constraint("users_task_count_not_negative", "users", "task_count >= 0")


def downgrade() -> None:
    op.execute("ALTER TABLE tasks RESET (fillfactor)")
    op.drop_constraint("users_task_count_not_negative", "users")
    op.drop_column("users", "task_count")
    op.drop_index("tasks_search", table_name="tasks")
