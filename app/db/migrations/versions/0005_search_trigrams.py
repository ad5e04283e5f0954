"""Fewer search keys per task: a task is keyed by its owner and the trigrams of its title and
description that are three ASCII letters or digits, or a space and the first two of a word. The
trigrams of a word's first character alone ("  t", held by most of a user's tasks) and of its end
("sk ") are left out: they were a third of a task's keys, each an index entry that every create
and every rename writes, and the ones a search can use least.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# pg_trgm lower-cases each word, pads it with two spaces in front and one behind, and makes its
# trigrams; one with a character outside ASCII comes out as a hash (0x…). Kept: "tas" and " ta",
# the keys a search looks for (app/search.py).
SEARCH_TRIGRAMS = """
CREATE FUNCTION task_search_trigrams(owner varchar, title varchar, description varchar)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(owner || ' ' || trigram)
    FROM unnest({schema}.show_trgm(title || coalesce(' ' || description, ''))) trigram
    WHERE trigram ~ '^[ a-z0-9][a-z0-9]{{2}}$'
$$"""


def _trgm_schema() -> str:
    # Named by schema: an index expression may be evaluated with a search_path of pg_catalog
    # alone (autovacuum, restores).
    return str(
        op.get_bind()
        .execute(
            sa.text(
                "SELECT quote_ident(extnamespace::regnamespace::text) FROM pg_extension "
                "WHERE extname = 'pg_trgm'"
            )
        )
        .scalar_one()
    )


def upgrade() -> None:
    op.execute(SEARCH_TRIGRAMS.format(schema=_trgm_schema()))
    op.execute(
        "CREATE INDEX tasks_search_trigrams ON tasks "
        "USING gin (task_search_trigrams(user_id, title, description)) WITH (fastupdate = off)"
    )
    # task_search_keys() stays for now: an instance of the previous release, still serving while
    # this one starts, searches through it, from the owner's tasks, instead of failing.
    op.drop_index("tasks_search_keys", table_name="tasks")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX tasks_search_keys ON tasks "
        "USING gin (task_search_keys(user_id, title, description)) WITH (fastupdate = off)"
    )
    op.drop_index("tasks_search_trigrams", table_name="tasks")
    op.execute("DROP FUNCTION task_search_trigrams(varchar, varchar, varchar)")
