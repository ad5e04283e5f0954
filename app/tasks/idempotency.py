"""Creates that a client can retry: the first answer to a request with an Idempotency-Key is kept,
with a fingerprint of the request, and given again to a repeat with the same key and body.

A keyed create is one statement, so the task and its key are written together or not at all:
1. a try-lock on (user, key), held until the statement ends: a repeat that arrives meanwhile gets
   a 409 at once instead of waiting;
2. the lookup of a live answer for the key: a replay, or a 422 when the body differs;
3. when there is none, the create (app/tasks/statements.py) and the record of its answer, unless
   the user already holds MAX_IDEMPOTENCY_KEYS_PER_USER live records: then a 429 until the
   first of them expires.

A create of the same key that committed after this statement began and before it took the lock
is not in its lookup: its record then fails on the key's primary key, nothing is written, and the
statement is sent once more, which finds that answer.

A replay gives the stored answer as it was given, unless the contract's Task has gained a field
since: then that field is taken from the task as it is now (with_every_field).

Expired keys are removed by the statement that records a new one, at most 16 at a time: each keyed
create adds one key and removes up to 16 expired ones, so expired keys never pile up and no
separate job has to run.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
import orjson

from app.db.database import Database
from app.db.sql import Statement
from app.problems import IdempotencyKeyInUse, IdempotencyKeyReused, IdempotencyKeysExhausted
from app.tasks.statements import INSERT_TASK, OWNER_COUNTS_NEW_TASK, TASK_COLUMNS, TASK_JSON

# The lock's name spells the user's id with its length first, then the key: no other (user, key)
# spells the same, whatever characters the two hold (an id may hold `:`, a key any visible
# character). The key's own expired record is deleted (`replaced`) before the new one is inserted:
# `recorded` reads `replaced`, which makes it run first. A live record that the lookup missed makes
# the insert fail on the primary key.
CREATE_ONCE = Statement(f"""
WITH key_lock AS (
    SELECT pg_try_advisory_xact_lock(hashtextextended(
        char_length(:user_id::text) || ':' || :user_id || ':' || :key, 0)) AS held
),
stored AS (
    SELECT stored.fingerprint, stored.status, stored.body, stored.location, stored.etag,
        CASE WHEN tasks.id IS NOT NULL THEN {TASK_JSON} END AS task
    FROM idempotency_keys AS stored
    LEFT JOIN tasks ON tasks.id = stored.task_id AND tasks.user_id = :user_id
    WHERE stored.user_id = :user_id AND stored.key = :key AND stored.expires_at > now()
),
keys_held AS (
    SELECT count(*) AS live, min(expires_at) AS first_expiry FROM idempotency_keys
    WHERE user_id = :user_id AND expires_at > now()
),
allowed AS (
    SELECT WHERE (SELECT held FROM key_lock) AND NOT EXISTS (SELECT FROM stored)
        AND (SELECT live FROM keys_held) < :max_keys
),
{OWNER_COUNTS_NEW_TASK},
created AS (
{INSERT_TASK}
),
replaced AS (
    DELETE FROM idempotency_keys
    WHERE user_id = :user_id AND key = :key AND expires_at <= now()
        AND EXISTS (SELECT FROM created)
    RETURNING 1
),
expired AS (
    DELETE FROM idempotency_keys WHERE (user_id, key) IN (
        SELECT user_id, key FROM idempotency_keys
        WHERE expires_at <= now() AND (user_id, key) <> (:user_id, :key)
        ORDER BY expires_at LIMIT 16 FOR UPDATE SKIP LOCKED
    ) AND EXISTS (SELECT FROM created)
),
recorded AS (
    INSERT INTO idempotency_keys
        (user_id, key, fingerprint, status, body, location, etag, task_id, expires_at)
    SELECT :user_id, :key, :fingerprint, 201, body, location, etag, task_id,
        now() + make_interval(secs => :ttl)
    FROM created
    WHERE (SELECT count(*) FROM replaced) >= 0
)
SELECT key_lock.held, keys_held.live >= :max_keys AS keys_exhausted,
    ceil(extract(epoch FROM keys_held.first_expiry - now()))::int AS keys_free_in, answer.*
FROM key_lock, keys_held LEFT JOIN (
    SELECT NULL::bytea AS fingerprint, 201 AS status, body, location, etag, NULL AS task
    FROM created
    UNION ALL
    SELECT fingerprint, status, body, location, etag, task FROM stored
) AS answer ON true""")

# Sent once more after a record that failed on its key (see above); then the key is taken to be
# in use.
ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str
    location: str
    etag: str
    replayed: bool = False


def fingerprint(request: Mapping[str, object]) -> bytes:
    """What makes two requests the same: the values they ask for, not their JSON's spelling.

    The values in the contract's order, trailing nulls left out: a field that a later version of
    the contract adds, left out by a client, leaves the fingerprint of a request as it was.
    """
    values = list(request.values())
    while values and values[-1] is None:
        values.pop()
    return hashlib.sha256(orjson.dumps(values)).digest()


async def create_once(
    database: Database,
    create: Mapping[str, object],
    request: Mapping[str, object],
    *,
    key: str,
    ttl: float,
    max_keys: int,
) -> Answer | None:
    """The answer to this keyed create, a replay or a new one; None when the create was refused
    (the owner's limit). `request` holds the body's values, `create` the statement's other
    arguments."""
    arguments = {
        **create,
        **request,
        "key": key,
        "fingerprint": fingerprint(request),
        "ttl": ttl,
        "max_keys": max_keys,
    }
    for _ in range(ATTEMPTS):
        try:
            row = await database.fetchrow(CREATE_ONCE, turn=create["user_id"], **arguments)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != "idempotency_keys_pkey":
                raise
            continue
        assert row is not None  # the statement always answers one row
        if not row["held"]:
            raise IdempotencyKeyInUse
        if row["status"] is None:
            if row["keys_exhausted"]:
                raise IdempotencyKeysExhausted(max_keys, row["keys_free_in"])
            return None
        if row["fingerprint"] is not None and row["fingerprint"] != arguments["fingerprint"]:
            raise IdempotencyKeyReused
        if row["fingerprint"] is None:
            return Answer(row["status"], row["body"], row["location"], row["etag"])
        body = with_every_field(row["body"], row["task"])
        return Answer(row["status"], body, row["location"], row["etag"], replayed=True)
    raise IdempotencyKeyInUse


def with_every_field(stored: str, task: str | None) -> str:
    """A stored answer as the contract's Task is now: as it was given, byte for byte, when it has
    every field; a field added to the contract since is taken from the task as it is now (null
    when the task is gone)."""
    answer = orjson.loads(stored)
    if all(name in answer for name in TASK_COLUMNS):
        return stored
    current = orjson.loads(task) if task is not None else {}
    completed = {name: answer.get(name, current.get(name)) for name in TASK_COLUMNS}
    return orjson.dumps({**completed, **answer}).decode()
