"""The SQL of the task operations: one statement each, its parameters named (app/db/sql.py).

A task's columns carry the contract's field names, and PostgreSQL renders a task as the contract's
JSON from `TASK_COLUMNS`, the fields of the contract's `Task`: the answer goes out as it is.

Every statement names the owner (`user_id = :user_id`): a task of another user is
indistinguishable from one that does not exist. Every write locks the owner's row first (`owner`),
then the tasks it changes: a user's writes take turns, always in that order, and the owner's
counts of tasks and completed tasks move in the same statement as the tasks they count.
"""

from app.db.sql import Statement
from generated.models import Task, TaskInput, TaskPatch

TASK_COLUMNS = tuple(Task.model_fields)
# The fields a client writes, stored as given; is_completed also sets completed_at.
GIVEN_COLUMNS = tuple(name for name in TaskInput.model_fields if name != "is_completed")
PATCHED_COLUMNS = tuple(name for name in TaskPatch.model_fields if name != "is_completed")
GIVEN = ", ".join(f"{column} = :{column}" for column in GIVEN_COLUMNS)
PATCHED = ",\n        ".join(
    f"{column} = CASE WHEN :set_{column} THEN :{column} ELSE tasks.{column} END"
    for column in PATCHED_COLUMNS
)

# One task as the contract's JSON, from the row called `tasks`. Timestamps render as RFC 3339 in
# the session's time zone, which app/db/database.py sets to UTC.
TASK_JSON = f"""(SELECT row_to_json(task) FROM (
    SELECT {", ".join(f"tasks.{column}" for column in TASK_COLUMNS)}
) task)::text"""
# The task's entity tag, as app/preconditions.py writes it: its version in quotes.
ETAG = "format('\"%s\"', tasks.version)"

# The owner's row, locked. A row lock reads the row as it is now, whatever committed since the
# statement began, so counts written back from these are exact. NO KEY UPDATE leaves reads and
# other users' creates (their foreign key checks) alone.
OWNER = """owner AS (
    SELECT task_count, completed_count FROM users WHERE id = :user_id FOR NO KEY UPDATE
)"""

# The task being written, locked, as it is now: it exists (found) or the answer is a 404.
TARGET = """target AS (
    SELECT id, is_completed, completed_at FROM tasks
    WHERE user_id = :user_id AND id = :task_id AND EXISTS (SELECT FROM owner)
    FOR UPDATE
)"""

# If-Match: the write happens when no versions are given, or the task's is one of them.
IF_MATCH = "(:versions::bigint[] IS NULL OR tasks.version = ANY(:versions::bigint[]))"

# Every write moves updated_at forward (even two writes within one clock tick) and the version.
CHANGED = """updated_at = greatest(now(), tasks.updated_at + interval '1 microsecond'),
        version = tasks.version + 1"""

# A single write's answer: the task as written (nulls when it was not), whether it was written,
# and whether it exists.
# Both counts are set from the locked `owner`: an UPDATE checks the row's CHECK on a row made from
# the version its snapshot holds before it finds a newer one, so a count kept from that version
# could fail the check for a moment that never existed.
WRITTEN_TASK = """counted AS (
    UPDATE users SET task_count = owner.task_count,
        completed_count = owner.completed_count + written.completed_change
    FROM owner, written WHERE users.id = :user_id AND written.completed_change <> 0
)
SELECT written.body, written.version,
    EXISTS (SELECT FROM written) AS written, EXISTS (SELECT FROM target) AS found
FROM (SELECT) AS one LEFT JOIN written ON true"""

GET = Statement(f"""
SELECT {TASK_JSON} AS body, version FROM tasks WHERE user_id = :user_id AND id = :task_id
""")

# A create counts the new task on its owner's row, made for a new user. The upsert also locks the
# row, so the user's creates take turns with the user's other writes and the limit holds: no task
# is made past it. `allowed` (one row, or none) says whether to create.
OWNER_COUNTS_NEW_TASK = """owner AS (
    INSERT INTO users (id, email, task_count, completed_count)
    SELECT :user_id, :email, 1, :is_completed::boolean::int FROM allowed
    ON CONFLICT (id) DO UPDATE SET task_count = users.task_count + 1,
        completed_count = users.completed_count + excluded.completed_count
    WHERE users.task_count < :max_tasks
    RETURNING id
)"""
# The new task's URL is `:tasks_url` (app/tasks/urls.py: the owner's id percent-encoded) and its id.
INSERT_TASK = f"""
INSERT INTO tasks (user_id, {", ".join(GIVEN_COLUMNS)}, is_completed, completed_at)
SELECT id, {", ".join(f":{column}" for column in GIVEN_COLUMNS)}, :is_completed::boolean,
    CASE WHEN :is_completed::boolean THEN now() END
FROM owner
RETURNING {TASK_JSON} AS body, :tasks_url::text || '/' || tasks.id AS location,
    {ETAG} AS etag, tasks.id AS task_id"""

CREATE = Statement(f"""
WITH allowed AS (SELECT),
{OWNER_COUNTS_NEW_TASK}
{INSERT_TASK}""")

# PUT: every field as given. Completing keeps an earlier completion time, or sets now; reopening
# clears it.
REPLACE = Statement(f"""
WITH {OWNER},
{TARGET},
written AS (
    UPDATE tasks SET {GIVEN},
        is_completed = :is_completed::boolean,
        completed_at = CASE WHEN :is_completed::boolean
            THEN coalesce(target.completed_at, now()) END,
        {CHANGED}
    FROM target WHERE tasks.id = target.id AND {IF_MATCH}
    RETURNING {TASK_JSON} AS body, tasks.version,
        tasks.is_completed::int - target.is_completed::int AS completed_change
),
{WRITTEN_TASK}""")

# PATCH: the fields given (`:set_<field>`), each to its value; the others as they are.
UPDATE = Statement(f"""
WITH {OWNER},
{TARGET},
written AS (
    UPDATE tasks SET {PATCHED},
        is_completed = CASE WHEN :set_is_completed THEN :is_completed::boolean
            ELSE tasks.is_completed END,
        completed_at = CASE WHEN NOT :set_is_completed THEN tasks.completed_at
            WHEN :is_completed::boolean THEN coalesce(target.completed_at, now()) END,
        {CHANGED}
    FROM target WHERE tasks.id = target.id AND {IF_MATCH}
    RETURNING {TASK_JSON} AS body, tasks.version,
        tasks.is_completed::int - target.is_completed::int AS completed_change
),
{WRITTEN_TASK}""")

TOGGLE = Statement(f"""
WITH {OWNER},
{TARGET},
written AS (
    UPDATE tasks SET is_completed = NOT target.is_completed,
        completed_at = CASE WHEN target.is_completed THEN NULL ELSE now() END,
        {CHANGED}
    FROM target WHERE tasks.id = target.id AND {IF_MATCH}
    RETURNING {TASK_JSON} AS body, tasks.version,
        CASE WHEN tasks.is_completed THEN 1 ELSE -1 END AS completed_change
),
{WRITTEN_TASK}""")

DELETE = Statement(f"""
WITH {OWNER},
{TARGET},
written AS (
    DELETE FROM tasks USING target WHERE tasks.id = target.id AND {IF_MATCH}
    RETURNING target.is_completed
),
counted AS (
    UPDATE users SET task_count = owner.task_count - 1,
        completed_count = owner.completed_count - written.is_completed::int
    FROM owner, written WHERE users.id = :user_id
)
SELECT EXISTS (SELECT FROM written) AS written, EXISTS (SELECT FROM target) AS found""")

# Complete all (or reopen all): every task of the user not yet in that state, with the rules of a
# single write. The owner's counts say first whether there is any: if not, no task is read. The
# tasks are those the statement sees: committed before it began, as they are when it locks them.
SET_ALL_COMPLETION = Statement(f"""
WITH {OWNER},
written AS (
    UPDATE tasks SET is_completed = :is_completed::boolean,
        completed_at = CASE WHEN :is_completed::boolean THEN now() END,
        {CHANGED}
    WHERE user_id = :user_id AND is_completed <> :is_completed::boolean
        AND (SELECT CASE WHEN :is_completed::boolean THEN task_count - completed_count
                         ELSE completed_count END FROM owner) > 0
    RETURNING 1
),
counted AS (
    UPDATE users SET task_count = owner.task_count,
        completed_count = owner.completed_count
            + CASE WHEN :is_completed::boolean THEN changed.count ELSE -changed.count END
    FROM owner, (SELECT count(*) FROM written) AS changed
    WHERE users.id = :user_id AND changed.count > 0
)
SELECT count(*) AS updated FROM written""")

# Clear completed (or open) tasks: every task of the user in that state, decided the same way.
DELETE_ALL = Statement(f"""
WITH {OWNER},
written AS (
    DELETE FROM tasks
    WHERE user_id = :user_id AND is_completed = :completed::boolean
        AND (SELECT CASE WHEN :completed::boolean THEN completed_count
                         ELSE task_count - completed_count END FROM owner) > 0
    RETURNING 1
),
counted AS (
    UPDATE users SET task_count = owner.task_count - removed.count,
        completed_count = owner.completed_count
            - CASE WHEN :completed::boolean THEN removed.count ELSE 0 END
    FROM owner, (SELECT count(*) FROM written) AS removed
    WHERE users.id = :user_id AND removed.count > 0
)
SELECT count(*) AS deleted FROM written""")

# The owner's row holds both counts; a user with no row has no tasks.
COUNT = Statement("""
SELECT coalesce(
    (SELECT format('{"total":%s,"open":%s,"completed":%s}',
                   task_count, task_count - completed_count, completed_count)
     FROM users WHERE id = :user_id),
    '{"total":0,"open":0,"completed":0}') AS counts""")

READY = Statement("SELECT 1")
