"""An index of each user's idempotency records by expiry: a keyed create counts the user's live
records (MAX_IDEMPOTENCY_KEYS_PER_USER) from it alone.

Building it holds off keyed creates (a SHARE lock on idempotency_keys) for as long as the build
takes: the table holds a day of keyed creates at most (IDEMPOTENCY_TTL), read in one pass.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "idempotency_keys_user_id_expires_at", "idempotency_keys", ["user_id", "expires_at"]
    )


def downgrade() -> None:
    op.drop_index("idempotency_keys_user_id_expires_at", table_name="idempotency_keys")
