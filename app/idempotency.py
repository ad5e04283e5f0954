"""Creates that a client can retry: the first answer to a request with an Idempotency-Key is kept,
with a fingerprint of the request, and given again to a repeat with the same key and body.

One explicit transaction per keyed create:
1. a try-lock on (user, key), held until the commit: a repeat that arrives meanwhile gets a 409
   at once instead of waiting, and one that arrives after the commit sees the stored answer;
2. the lookup of a live answer for the key: a replay, or a 422 when the body differs;
3. the create itself;
4. the record of its answer, in the same transaction: if either write fails, neither exists.

Expired keys are removed by the step that records a new one, at most 16 at a time: each keyed
create adds one key and removes up to 16 expired ones, so expired keys never pile up and no
separate job has to run.
"""

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from app.db import Database, Statements
from app.problems import IdempotencyKeyInUse, IdempotencyKeyReused

# user_id cannot contain ':' (the contract's pattern), so the pair is unambiguous.
LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended($1::text || ':' || $2::text, 0))"

STORED = """
SELECT fingerprint, status, body, location, etag FROM idempotency_keys
WHERE user_id = $1 AND key = $2 AND expires_at > now()"""

# An expired record of the same key is replaced: the lock and the lookup rule out a live one.
RECORD = """
WITH expired AS (
    DELETE FROM idempotency_keys WHERE (user_id, key) IN (
        SELECT user_id, key FROM idempotency_keys
        WHERE expires_at <= now() AND (user_id, key) <> ($1, $2)
        ORDER BY expires_at LIMIT 16 FOR UPDATE SKIP LOCKED
    )
)
INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, location, etag, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
ON CONFLICT (user_id, key) DO UPDATE SET
    fingerprint = excluded.fingerprint, status = excluded.status, body = excluded.body,
    location = excluded.location, etag = excluded.etag, expires_at = excluded.expires_at"""


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
    *,
    user_id: str,
    key: str,
    request: bytes,
    ttl: float,
    create: Callable[[Statements], Awaitable[Answer]],
) -> tuple[Answer, bool]:
    """The answer to this keyed create, and whether it is a replay of an earlier one."""
    async with database.transaction() as transaction:
        if not await transaction.fetchval(LOCK, user_id, key):
            raise IdempotencyKeyInUse
        stored = await transaction.fetchrow(STORED, user_id, key)
        if stored is not None:
            if stored["fingerprint"] != request:
                raise IdempotencyKeyReused
            return Answer(
                stored["status"], stored["body"], stored["location"], stored["etag"]
            ), True
        answer = await create(transaction)
        await transaction.fetchval(
            RECORD,
            user_id,
            key,
            request,
            answer.status,
            answer.body,
            answer.location,
            answer.etag,
            ttl,
        )
        return answer, False
