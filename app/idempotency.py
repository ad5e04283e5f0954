"""Creates that a client can retry: the first answer to a request with an Idempotency-Key is kept,
with a fingerprint of the request, and given again to a repeat with the same key and body.

A keyed create is one statement, so the task and its key are written together or not at all:
1. a try-lock on (user, key), held until the statement ends: a repeat that arrives meanwhile gets
   a 409 at once instead of waiting;
2. the lookup of a live answer for the key: a replay, or a 422 when the body differs;
3. when there is none, the create and the record of its answer.

The lookup reads the statement's snapshot, taken before the lock: a create of the same key that
committed in between is missing from it. The record then fails on the key's primary key, nothing
of the statement is written, and the statement runs again, now finding that answer.

Expired keys are removed by the statement that records a new one, at most 16 at a time: each keyed
create adds one key and removes up to 16 expired ones, so expired keys never pile up and no
separate job has to run.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import orjson

from app.db import Database
from app.problems import IdempotencyKeyInUse, IdempotencyKeyReused

ATTEMPTS = 3  # a key recorded between snapshot and lock is found by the next attempt


def create_once_statement(creating: Callable[[str], str], first: int) -> str:
    """The create that `creating(condition)` writes as CTEs (the last, `created`, returning the
    answer's body, location and etag; $1 the user), made only when no live answer is stored for
    the key ($first), with the request's fingerprint ($first + 1) kept for ttl seconds
    ($first + 2). It answers whether the key's lock was taken, and the stored answer with its
    fingerprint or the new one without (all null when there is neither)."""
    key, fingerprint_, ttl = (f"${first + offset}" for offset in range(3))
    # user_id cannot contain ':' (the contract's pattern), so the pair is unambiguous.
    return f"""
WITH locked AS (
    SELECT pg_try_advisory_xact_lock(hashtextextended($1::text || ':' || {key}::text, 0)) AS held
),
stored AS (
    SELECT fingerprint, status, body, location, etag FROM idempotency_keys
    WHERE user_id = $1 AND key = {key} AND expires_at > now()
),
{creating("(SELECT held FROM locked) AND NOT EXISTS (SELECT FROM stored)")},
-- The key's own expired record is deleted first, and a new one inserted: a live one that the
-- snapshot missed makes the insert fail on the primary key.
replaced AS (
    DELETE FROM idempotency_keys
    WHERE user_id = $1 AND key = {key} AND expires_at <= now() AND EXISTS (SELECT FROM created)
    RETURNING 1
),
expired AS (
    DELETE FROM idempotency_keys WHERE (user_id, key) IN (
        SELECT user_id, key FROM idempotency_keys
        WHERE expires_at <= now() AND (user_id, key) <> ($1, {key})
        ORDER BY expires_at LIMIT 16 FOR UPDATE SKIP LOCKED
    ) AND EXISTS (SELECT FROM created)
),
recorded AS (
    INSERT INTO idempotency_keys
        (user_id, key, fingerprint, status, body, location, etag, expires_at)
    SELECT $1, {key}, {fingerprint_}, 201, body, location, etag,
        now() + make_interval(secs => {ttl})
    FROM created
    WHERE (SELECT count(*) FROM replaced) >= 0  -- read, so that the delete comes first
)
SELECT held, answer.* FROM locked LEFT JOIN (
    SELECT NULL::bytea AS fingerprint, 201 AS status, body, location, etag FROM created
    UNION ALL
    SELECT fingerprint, status, body, location, etag FROM stored
) answer ON true"""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str
    location: str
    etag: str


def fingerprint(*request: object) -> bytes:
    """What makes two requests the same: the values they ask for, not their JSON's spelling."""
    return hashlib.sha256(orjson.dumps(request)).digest()


async def create_once(
    database: Database,
    statement: str,
    *args: object,
    key: str,
    request: bytes,
    ttl: float,
) -> tuple[Answer, bool] | None:
    """The answer to this keyed create (a create_once_statement of `args`), and whether it is a
    replay of an earlier one; None when the statement created nothing."""
    for _ in range(ATTEMPTS):
        try:
            row = await database.fetchrow(statement, *args, key, request, ttl)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != "idempotency_keys_pkey":
                raise
            continue
        assert row is not None  # the statement always answers one row
        if not row["held"]:
            raise IdempotencyKeyInUse
        if row["status"] is None:
            return None
        answer = Answer(row["status"], row["body"], row["location"], row["etag"])
        if row["fingerprint"] is None:
            return answer, False
        if row["fingerprint"] != request:
            raise IdempotencyKeyReused
        return answer, True
    raise IdempotencyKeyInUse
