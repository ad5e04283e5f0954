"""Complete all and reopen all in one row, whatever the number of tasks.

Setting every task of a user to one state does not rewrite the tasks. It records a *mark*: the
user's completion epoch moves by one, and `completion_marks` keeps the mark's state, time and
`flips` (how many times the state changed from one mark to the next, counted since the first).
Each task keeps the epoch of its last own write. A task whose epoch is behind its owner's is
*stale*: it went through every mark since, and its fields follow from the first of those marks
(F) and the last (L), as if the marks had been applied one by one:

- its state is L's;
- it changed state `transitions` = (own state <> F's) + (L.flips - F.flips) times, each change a
  new version;
- the last change was at L's run (the first mark of the run of equal states L ends, kept in the
  user's `completion_changed_at`) when the state changed after F, else at F;
- completed_at is that time when it ended up completed, updated_at is that time or, if later, its
  own plus one microsecond per change (the rule of a single write).

A task with no transitions is as it was, entity tag included. Reads render tasks through these
expressions; every write to a task writes its current fields back and catches it up to its
owner's epoch.
"""


def _owner(column: str) -> str:
    """One of the owner's columns as the statement sees it, read once per statement."""
    return f"(SELECT {column} FROM users WHERE id = $1)"


EPOCH = _owner("completion_epoch")


def first_mark(task: str) -> str:
    """F, joined LATERAL to the task `task`, with the owner's row: for a stale task only, its
    state now, the number of transitions the marks made, and the time of the last. Nothing is
    read for a task that is current (OFFSET 0 keeps that test inside, before any scan).

    Never beside a row being locked: when a concurrent write has committed, PostgreSQL's
    recheck takes the new row but reuses the mark joined to the old one (see `locked` in
    app/tasks.py)."""
    return f"""LEFT JOIN LATERAL (
    SELECT o.completion_state AS is_completed,
        ({task}.is_completed <> m.is_completed)::int + o.completion_flips - m.flips
            AS transitions,
        CASE WHEN o.completion_flips > m.flips THEN o.completion_changed_at ELSE m.at END
            AS changed_at
    FROM completion_marks m, users o
    WHERE m.user_id = $1 AND m.epoch = {task}.completion_epoch + 1 AND o.id = $1
        AND {task}.completion_epoch < {EPOCH}
    OFFSET 0
) f ON true"""


def current(task: str) -> dict[str, str]:
    """The fields of the task `task` that the marks change, as they are now (with f joined)."""
    unmoved = "coalesce(f.transitions, 0) = 0"
    return {
        "is_completed": f"coalesce(f.is_completed, {task}.is_completed)",
        "completed_at": (
            f"CASE WHEN {unmoved} THEN {task}.completed_at"
            " WHEN f.is_completed THEN f.changed_at END"
        ),
        "updated_at": (
            f"CASE WHEN {unmoved} THEN {task}.updated_at ELSE greatest(f.changed_at,"
            f" {task}.updated_at + f.transitions * interval '1 microsecond') END"
        ),
        "version": f"{task}.version + coalesce(f.transitions, 0)",
    }


def current_state(task: str) -> str:
    """The task's state now, without reading any mark: a stale task is in its owner's state."""
    return (
        f"CASE WHEN {task}.completion_epoch < {EPOCH} THEN {_owner('completion_state')}"
        f" ELSE {task}.is_completed END"
    )


# How many of the user's tasks are not in the state $2, from the owner's counts.
TOWARDS = "CASE WHEN $2 THEN task_count - completed_count ELSE completed_count END"

# Marks the user's tasks as set to $2, when the counts say some are not; answers how many. The
# owner's row, locked, holds the last mark: a mark made by a statement that began later is
# seen here even if this statement's snapshot is older.
SET_ALL_COMPLETION = f"""
WITH owner AS (SELECT * FROM users WHERE id = $1 FOR NO KEY UPDATE),
mark AS (
    SELECT completion_epoch + 1 AS epoch,
        greatest(now(), completion_at + interval '1 microsecond') AS at,
        CASE WHEN completion_epoch = 0 THEN 0
             ELSE completion_flips + (completion_state <> $2)::int END AS flips,
        CASE WHEN completion_epoch > 0 AND completion_state = $2
             THEN completion_changed_at END AS unchanged_since,
        {TOWARDS} AS updated, task_count
    FROM owner
),
marked AS (
    INSERT INTO completion_marks (user_id, epoch, is_completed, at, flips)
    SELECT $1, epoch, $2, at, flips FROM mark WHERE updated > 0
),
counted AS (
    UPDATE users SET completion_epoch = mark.epoch, completion_state = $2,
        completion_at = mark.at, completion_flips = mark.flips,
        completion_changed_at = coalesce(mark.unchanged_since, mark.at),
        task_count = mark.task_count,  -- both counts from the locked row (see RECOUNT)
        completed_count = CASE WHEN $2 THEN mark.task_count ELSE 0 END
    FROM mark WHERE users.id = $1 AND mark.updated > 0
)
SELECT coalesce((SELECT updated FROM mark), 0)"""
