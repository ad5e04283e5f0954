"""Every task's row holds its state: complete all and reopen all write the tasks they change.

Until now they recorded a *mark* (`completion_marks`, and the user's `completion_*` columns), and a
task written before its owner's last mark was read as if the marks had rewritten it, while its row
kept its older state. This migration writes that state into each such row, by the same rules the
reads used, then drops the marks. Search no longer reads an index of its own: it walks the
user's tasks by the (user_id, created_at, id) index, so the trigram index and its functions go.

The tables are locked against writes while the rows are written, so that no mark is made in
between; reads go on until the columns are dropped.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A stale task (its epoch behind its owner's) went through every mark since its last write. F is
# the first of those marks, the owner's row holds the last: the task is in the owner's state, it
# changed state `transitions` times (one version each), the last time at `changed_at`.
WRITE_BACK = """
UPDATE tasks SET is_completed = moved.is_completed,
    completed_at = CASE WHEN moved.transitions = 0 THEN tasks.completed_at
                        WHEN moved.is_completed THEN moved.changed_at END,
    updated_at = CASE WHEN moved.transitions = 0 THEN tasks.updated_at
        ELSE greatest(moved.changed_at,
                      tasks.updated_at + moved.transitions * interval '1 microsecond') END,
    version = tasks.version + moved.transitions
FROM (
    SELECT task.id, owner.completion_state AS is_completed,
        (task.is_completed <> f.is_completed)::int + owner.completion_flips - f.flips
            AS transitions,
        CASE WHEN owner.completion_flips > f.flips THEN owner.completion_changed_at
             ELSE f.at END AS changed_at
    FROM tasks AS task
    JOIN users AS owner ON owner.id = task.user_id
    JOIN completion_marks AS f ON f.user_id = task.user_id AND f.epoch = task.completion_epoch + 1
    WHERE task.completion_epoch < owner.completion_epoch
) AS moved
WHERE tasks.id = moved.id
"""


def upgrade() -> None:
    op.execute("LOCK TABLE users, tasks, completion_marks IN EXCLUSIVE MODE")
    op.execute(WRITE_BACK)
    op.drop_table("completion_marks")
    op.drop_column("tasks", "completion_epoch")
    for column in ("changed_at", "flips", "at", "state", "epoch"):
        op.drop_column("users", f"completion_{column}")
    op.drop_index("tasks_search_trigrams", table_name="tasks")
    op.execute("DROP FUNCTION task_search_trigrams(varchar, varchar, varchar)")
    op.execute("DROP FUNCTION task_search_keys(varchar, varchar, varchar)")


def downgrade() -> None:
    # Every task is current at epoch 0, as each was before its owner's first mark.
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
    for name, keys, condition in (
        ("task_search_keys", "DISTINCT owner || ' ' || trigram", ""),
        (
            "task_search_trigrams",
            "owner || ' ' || trigram",
            "WHERE trigram ~ '^[ a-z0-9][a-z0-9]{2}$'",
        ),
    ):
        op.execute(
            f"CREATE FUNCTION {name}(owner varchar, title varchar, description varchar) "
            "RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ "
            f"SELECT array_agg({keys}) FROM unnest({schema}.show_trgm("
            f"title || coalesce(' ' || description, ''))) trigram {condition} $$"
        )
    op.execute(
        "CREATE INDEX tasks_search_trigrams ON tasks "
        "USING gin (task_search_trigrams(user_id, title, description)) WITH (fastupdate = off)"
    )
