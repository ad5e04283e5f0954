"""Each user's completed count beside the task count; complete all and reopen all as marks (see
app/completion.py); search keys that name their owner.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every trigram of a task's title and description (as pg_trgm makes them: lower case, words
# padded with spaces), each prefixed with the owner. A trigram such as "tas" that nearly every
# task holds then has one short posting list per user instead of one that spans the table, so a
# search reads only its user's entries. app/search.py makes the keys a search looks for.
SEARCH_KEYS = """
CREATE FUNCTION task_search_keys(owner varchar, title varchar, description varchar)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(DISTINCT owner || ' ' || trigram)
    FROM unnest({schema}.show_trgm(title || coalesce(' ' || description, ''))) trigram
$$"""


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("completed_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.execute(
        "UPDATE users SET completed_count = counted.completed FROM "
        "(SELECT user_id, count(*) AS completed FROM tasks WHERE is_completed GROUP BY user_id) "
        "counted WHERE users.id = counted.user_id"
    )
    op.create_check_constraint(
        "users_completed_count_bounds", "users", "completed_count BETWEEN 0 AND task_count"
    )
    # Constant defaults: PostgreSQL adds these columns without rewriting the tables.
    op.add_column(
        "users",
        sa.Column("completion_epoch", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("users", sa.Column("completion_state", sa.Boolean, nullable=True))
    op.add_column("users", sa.Column("completion_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "users",
        sa.Column("completion_flips", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.add_column(
        "users", sa.Column("completion_changed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "tasks",
        sa.Column("completion_epoch", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.create_table(
        "completion_marks",
        sa.Column(
            "user_id",
            sa.String(64),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("epoch", sa.BigInteger, primary_key=True),
        sa.Column("is_completed", sa.Boolean, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flips", sa.BigInteger, nullable=False),
    )
    # Named by schema: an index expression may be evaluated with a search_path of pg_catalog
    # alone (autovacuum, restores).
    schema = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT quote_ident(extnamespace::regnamespace::text) FROM pg_extension "
                "WHERE extname = 'pg_trgm'"
            )
        )
        .scalar_one()
    )
    op.execute(SEARCH_KEYS.format(schema=schema))
    op.drop_index("tasks_search", table_name="tasks")
    # Without the pending list: every search would scan it whole, and every write that adds keys
    # would append to that one list. Keys go straight to their users' pages instead.
    op.execute(
        "CREATE INDEX tasks_search_keys ON tasks "
        "USING gin (task_search_keys(user_id, title, description)) WITH (fastupdate = off)"
    )


def downgrade() -> None:
    op.drop_index("tasks_search_keys", table_name="tasks")
    op.execute("DROP FUNCTION task_search_keys(varchar, varchar, varchar)")
    op.create_index(
        "tasks_search",
        "tasks",
        ["user_id", "title", "description"],
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops", "description": "gin_trgm_ops"},
    )
    op.drop_table("completion_marks")
    op.drop_column("tasks", "completion_epoch")
    for column in ("changed_at", "flips", "at", "state", "epoch"):
        op.drop_column("users", f"completion_{column}")
    op.drop_constraint("users_completed_count_bounds", "users")
    op.drop_column("users", "completed_count")
