"""The bench's data: a million tasks of 10,000 users, written as people write todo lists.

- Users have as many tasks as users do: a log-normal count, a few dozen for most, hundreds for
  some, up to 2,000 (about 100 on average). Their tasks were created over time, interleaved, as a
  live table holds them: one user's tasks spread over many pages. A quarter are completed.
- Titles and descriptions come from bench/vocabulary.py.
- `bulk-NNN`: 100 users of 100 tasks each, for the mixed scenario's complete all and clear
  completed (refilled before each run, so that what they delete is theirs alone).
- `lone-1k`, `lone-10k`: a user with 1,000 tasks and one with 10,000, for the bulk calls alone.
- `crafted-10k`: 10,000 tasks of the largest size, each holding every trigram of "milk" but
  never "milk", for the search crafted to be slow.
- A day of idempotency keys (one create in 20 carried one), some just expired.
"""

import math
import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.vocabulary import Vocabulary

USERS = 10_000
MAX_TASKS = 2_000
BULK_USERS = 100
BULK_TASKS = 100
CRAFTED_QUERY = "milk"
# Every trigram of "milk" ("mil", "ilk"), never "milk": 1,000 characters, the most a task holds.
CRAFTED_DESCRIPTION = ("mil ilk " * 125)[:1000]
START = datetime(2026, 1, 1, tzinfo=UTC)
COLUMNS = (
    "user_id", "title", "description", "is_completed", "completed_at", "created_at", "updated_at",
)  # fmt: skip

KEYS = """
INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, location, etag, expires_at)
SELECT user_id, 'load-' || id, sha256(uuid_send(id)), 201, row_to_json(tasks)::text,
       '/users/' || user_id || '/tasks/' || id, '"1"',
       now() - interval '1 hour' + get_byte(uuid_send(id), 15) / 255.0 * interval '1 day'
FROM tasks WHERE id::text < '0d'
"""
COUNTS = """
INSERT INTO users (id, task_count, completed_count)
SELECT user_id, count(*), count(*) FILTER (WHERE is_completed) FROM tasks GROUP BY user_id
ON CONFLICT (id) DO UPDATE SET task_count = excluded.task_count,
    completed_count = excluded.completed_count
"""


def _task_counts(chosen: random.Random) -> dict[str, int]:
    return {
        f"u{n:05d}": min(MAX_TASKS, max(1, round(chosen.lognormvariate(math.log(60), 1.0))))
        for n in range(1, USERS + 1)
    }


def _rows(
    owners: list[str], vocabulary: Vocabulary, start: datetime, step: timedelta
) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for n, (owner, (title, description)) in enumerate(
        zip(owners, vocabulary.tasks(len(owners)), strict=True)
    ):
        at = start + n * step
        completed = vocabulary.random.random() < 0.25
        rows.append((owner, title, description, completed, at if completed else None, at, at))
    return rows


async def load(connection: asyncpg.Connection, seed: int = 2026) -> None:
    started = time.monotonic()
    chosen = random.Random(seed)
    vocabulary = Vocabulary(seed)
    counts = _task_counts(chosen)
    owners = [user for user, count in counts.items() for _ in range(count)]
    chosen.shuffle(owners)  # interleaved in time, as users write
    rows = _rows(owners, vocabulary, START, timedelta(seconds=20))
    await connection.executemany(
        "INSERT INTO users (id) VALUES ($1)", [(user,) for user in [*counts, "crafted-10k"]]
    )
    await connection.copy_records_to_table("tasks", records=rows, columns=COLUMNS)
    for user, count in (("lone-1k", 1_000), ("lone-10k", 10_000)):
        await refill(connection, user, count)
    crafted = [
        ("crafted-10k", f"Mill and ilk {n}", CRAFTED_DESCRIPTION, False, None, START, START)
        for n in range(10_000)
    ]
    await connection.copy_records_to_table("tasks", records=crafted, columns=COLUMNS)
    await connection.execute(COUNTS)
    await refill_bulk_users(connection)
    await connection.execute(KEYS)
    await connection.execute("VACUUM ANALYZE")
    # Written now, not by a checkpoint during the first runs.
    await connection.execute("CHECKPOINT")
    count = await connection.fetchval("SELECT count(*) FROM tasks")
    print(f"loaded {count:,} tasks in {time.monotonic() - started:.1f} s", flush=True)


async def refill(connection: asyncpg.Connection, user: str, count: int, seed: int = 7) -> None:
    """`user` with `count` tasks of their own again, a quarter of them completed."""
    await connection.execute("INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING", user)
    await connection.execute("DELETE FROM tasks WHERE user_id = $1", user)
    rows = _rows([user] * count, Vocabulary(seed), START, timedelta(minutes=1))
    await connection.copy_records_to_table("tasks", records=rows, columns=COLUMNS)
    await connection.execute(
        "INSERT INTO users (id, task_count, completed_count)"
        " SELECT $1::text, count(*), count(*) FILTER (WHERE is_completed) FROM tasks"
        " WHERE user_id = $1::text"
        " ON CONFLICT (id) DO UPDATE SET task_count = excluded.task_count,"
        " completed_count = excluded.completed_count",
        user,
    )


async def refill_bulk_users(connection: asyncpg.Connection) -> None:
    for n in range(1, BULK_USERS + 1):
        await refill(connection, f"bulk-{n:03d}", BULK_TASKS, seed=n)


async def sample_ids(connection: asyncpg.Connection, count: int = 200_000) -> str:
    """(user, task) pairs of the users of the load, one per line, in a stable random order."""
    rows = await connection.fetch(
        "SELECT user_id, id FROM tasks WHERE user_id LIKE 'u%' ORDER BY md5(id::text) LIMIT $1",
        count,
    )
    return "".join(f"{row['user_id']} {row['id']}\n" for row in rows)
