"""User ids as identity providers issue them: 1 to 255 letters, digits and `_ - . | : @`, not
starting with a dot (`auth0|5f7c8ec7c33c6c004bbafe82`, `someone@example.com`, `urn:tenant:42`).

Every column that holds a user id widens from 64 to 255 characters (users.id, tasks.user_id,
idempotency_keys.user_id), and the Location a keyed create's answer keeps from 256 to 815: the
longest id, each of its characters percent-encoded as three (app/tasks/urls.py). The users' CHECK
takes the contract's new pattern.

No table is rewritten and no index rebuilt: a longer varchar limit is binary compatible, so
PostgreSQL changes the catalog alone, keeps every index's file as it is, and keeps the foreign keys
to users.id without checking them again. Measured on PostgreSQL 18 with a million tasks of 10,000
users: the same relfilenode for every table and index before and after, no scan of tasks or
idempotency_keys, one scan of users (the new CHECK's), 0.13 s in all.

Each ALTER takes an ACCESS EXCLUSIVE lock on its table (and the foreign keys a SHARE ROW EXCLUSIVE
lock on the tables at their other end), held until the migrations commit: requests on users,
tasks and idempotency_keys wait for that moment. What can make it long is waiting for the lock
behind a long transaction, and every request queues behind the waiting ALTER meanwhile:
`lock_timeout` bounds that wait (DB_LOCK_TIMEOUT at start-up), after which the migration gives up
and is retried with a backoff (app/db/startup.py). The new CHECK reads users once (one row per
user, not per task); no row can fail it, as the new pattern accepts every id the old one did. The
old CHECK is dropped first, so that no type change reads users to check it again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USER_ID_COLUMNS = (("users", "id"), ("tasks", "user_id"), ("idempotency_keys", "user_id"))
USER_ID_CHECK = (
    "char_length(id) BETWEEN 1 AND 255 AND id ~ '^[A-Za-z0-9_|:@-][A-Za-z0-9_.|:@-]{0,254}$'"
)
PREVIOUS_USER_ID_CHECK = "char_length(id) BETWEEN 1 AND 64 AND id ~ '^[A-Za-z0-9_-]+$'"


def _resize(table: str, column: str, before: int, after: int) -> None:
    op.alter_column(
        table,
        column,
        type_=sa.String(after),
        existing_type=sa.String(before),
        existing_nullable=False,
    )


def upgrade() -> None:
    # The old CHECK first: with it in place, the type change of users.id would read users again.
    op.drop_constraint("users_id_format", "users")
    for table, column in USER_ID_COLUMNS:
        _resize(table, column, 64, 255)
    _resize("idempotency_keys", "location", 256, 815)
    op.create_check_constraint("users_id_format", "users", USER_ID_CHECK)


def downgrade() -> None:
    # Fails, as it must, while any id or stored Location is longer than the previous columns hold
    # or an id holds a character the previous pattern refused: the previous release could not
    # serve that user.
    op.drop_constraint("users_id_format", "users")
    op.create_check_constraint("users_id_format", "users", PREVIOUS_USER_ID_CHECK)
    _resize("idempotency_keys", "location", 815, 256)
    for table, column in reversed(USER_ID_COLUMNS):
        _resize(table, column, 255, 64)
