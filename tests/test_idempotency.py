"""Idempotency-Key on create: one task per key, the first answer replayed, reuse refused."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest

from app.config import Settings
from app.tasks.idempotency import fingerprint
from generated.models import Task
from tests.conftest import serving, truncate
from tests.support.databases import connect

KEY = "6f1c8a52-0d4e-4c5b-9f0e-2b7a3c9d1e84"
# As another write of alice's does: her creates then wait for the row, holding their key's lock.
HOLD_THE_OWNER = "SELECT FROM users WHERE id = 'alice' FOR NO KEY UPDATE"


async def _post(
    client: httpx.AsyncClient, body: dict[str, Any], key: str = KEY, user: str = "alice"
) -> httpx.Response:
    return await client.post(f"/users/{user}/tasks", json=body, headers={"Idempotency-Key": key})


async def _count(database_url: str, table: str = "tasks") -> int:
    async with connect(database_url) as connection:
        count: int = await connection.fetchval(f"SELECT count(*) FROM {table}")
    return count


async def test_a_repeat_gets_the_first_answer_byte_for_byte(
    client: httpx.AsyncClient, database_url: str
) -> None:
    first = await _post(client, {"title": "Buy milk", "description": "Two litres"})
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    await client.patch(first.headers["location"], json={"title": "Changed since"})
    again = await _post(client, {"description": "Two litres", "title": "Buy milk"})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    for header in ("location", "etag", "content-type", "content-length"):
        assert again.headers[header] == first.headers[header], header
    assert await _count(database_url) == 1


async def test_leaving_out_a_default_is_the_same_request(
    client: httpx.AsyncClient, database_url: str
) -> None:
    first = await _post(client, {"title": "Buy milk"})
    spelled_out = await _post(
        client, {"title": "Buy milk", "description": None, "is_completed": False}
    )
    assert spelled_out.headers["idempotent-replayed"] == "true"
    assert spelled_out.content == first.content
    assert await _count(database_url) == 1


async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await _post(client, {"title": "Buy milk"})
    response = await _post(client, {"title": "Buy bread"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {
            "location": "header",
            "field": "Idempotency-Key",
            "message": "This key was used before with a different request body.",
        }
    ]
    assert await _count(database_url) == 1


async def test_keys_belong_to_their_user(client: httpx.AsyncClient, database_url: str) -> None:
    alice = await _post(client, {"title": "Buy milk"}, user="alice")
    bob = await _post(client, {"title": "Buy milk"}, user="bob")
    assert alice.status_code == bob.status_code == 201
    assert "idempotent-replayed" not in bob.headers
    assert alice.json()["id"] != bob.json()["id"]
    assert await _count(database_url) == 2


async def test_without_a_key_every_create_makes_a_task(
    client: httpx.AsyncClient, database_url: str
) -> None:
    for _ in range(2):
        response = await client.post("/users/alice/tasks", json={"title": "Buy milk"})
        assert response.status_code == 201
    assert await _count(database_url) == 2
    assert await _count(database_url, "idempotency_keys") == 0


@pytest.mark.parametrize(
    "key", [b"", b"x" * 256, b"with space", b"tab\there", "é".encode("latin-1"), b"\x7f"]
)
async def test_a_malformed_key_is_422_and_creates_nothing(
    client: httpx.AsyncClient, database_url: str, key: bytes
) -> None:
    response = await client.post(
        "/users/alice/tasks", json={"title": "x"}, headers=[(b"Idempotency-Key", key)]
    )
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert (error["location"], error["field"]) == ("header", "Idempotency-Key")
    assert await _count(database_url) == 0


async def test_the_longest_key_and_every_visible_character_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    visible = "".join(chr(code) for code in range(0x21, 0x7F))
    for key in ("k" * 255, visible, "a"):
        assert (await _post(client, {"title": "x"}, key=key)).status_code == 201


async def test_an_expired_key_is_a_new_key(client: httpx.AsyncClient, database_url: str) -> None:
    first = await _post(client, {"title": "Buy milk"})
    async with connect(database_url) as connection:
        await connection.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 s'")
    fresh = await _post(client, {"title": "Buy bread"})  # another body: the old answer is gone
    assert fresh.status_code == 201
    assert "idempotent-replayed" not in fresh.headers
    assert fresh.json()["id"] != first.json()["id"]
    again = await _post(client, {"title": "Buy bread"})
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == fresh.content


async def test_keys_live_for_the_configured_time(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await _post(client, {"title": "Buy milk"})
    async with connect(database_url) as connection:
        lifetime = await connection.fetchval(
            "SELECT extract(epoch FROM expires_at - now()) FROM idempotency_keys"
        )
    assert 24 * 3600 - 60 < lifetime <= 24 * 3600  # IDEMPOTENCY_TTL's default


async def test_a_keyed_create_removes_at_most_16_expired_keys(
    client: httpx.AsyncClient, database_url: str
) -> None:
    async with connect(database_url) as connection:
        await connection.execute("INSERT INTO users (id) VALUES ('old')")
        await connection.execute(
            """INSERT INTO idempotency_keys
               (user_id, key, fingerprint, status, body, location, etag, expires_at)
               SELECT 'old', 'k' || n, '', 201, '{}', '/', '"1"', now() - interval '1 hour'
               FROM generate_series(1, 40) n"""
        )
    await _post(client, {"title": "x"}, key="a")
    assert await _count(database_url, "idempotency_keys") == 40 - 16 + 1
    await client.post("/users/alice/tasks", json={"title": "no key"})
    assert await _count(database_url, "idempotency_keys") == 40 - 16 + 1  # only keyed creates
    for key in ("b", "c"):
        await _post(client, {"title": "x"}, key=key)
    assert await _count(database_url, "idempotency_keys") == 3  # every expired key is gone


async def _advisory_locks(connection: Any) -> int:
    """The advisory locks held in this database: a keyed create's, while it runs."""
    held: int = await connection.fetchval(
        """SELECT count(*) FROM pg_locks
           JOIN pg_database ON pg_database.oid = pg_locks.database
           WHERE locktype = 'advisory' AND granted AND datname = current_database()"""
    )
    return held


async def _until_a_key_is_held(connection: Any) -> None:
    for _ in range(100):
        if await _advisory_locks(connection):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no keyed create took its key's lock")


@asynccontextmanager
async def _a_create_waiting_with_its_key(
    client: httpx.AsyncClient, database_url: str
) -> AsyncIterator[tuple["asyncio.Task[httpx.Response]", Any]]:
    """A keyed create of "Buy milk" that holds its key's lock and waits for alice's row, held as
    another write of hers would hold it until the block ends. Yields the create and a spare
    connection."""
    await client.post("/users/alice/tasks", json={"title": "earlier"})
    async with connect(database_url) as holder, connect(database_url) as spare:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(HOLD_THE_OWNER)
        create = asyncio.create_task(_post(client, {"title": "Buy milk"}))
        await _until_a_key_is_held(spare)
        try:
            yield create, spare
        finally:
            await transaction.rollback()


async def test_a_key_recorded_after_the_snapshot_is_found_by_the_next_attempt(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """The lookup reads the statement's snapshot, taken before the key's lock. A create of the
    same key that commits in between is missing from it: the record fails on the key, nothing of
    the statement is written, and the statement runs again and replays that answer."""
    # An answer of the contract's Task, every field present: replayed as it is.
    stored = orjson.dumps({name: f"stored {name}" for name in Task.model_fields})
    # The owner's row held, so that the keyed create waits after its lookup.
    async with _a_create_waiting_with_its_key(client, database_url) as (keyed, other):
        await other.execute(
            """INSERT INTO idempotency_keys
                   (user_id, key, fingerprint, status, body, location, etag, expires_at)
               VALUES ('alice', $1, $2, 201, $3, '/users/alice/tasks/elsewhere', '"1"',
                   now() + interval '1 hour')""",
            KEY,
            fingerprint({"title": "Buy milk", "description": None, "is_completed": False}),
            stored.decode(),
        )
    replay = await keyed
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == stored
    assert replay.headers["location"] == "/users/alice/tasks/elsewhere"
    assert await _count(database_url) == 1  # the earlier task alone
    async with connect(database_url) as connection:
        assert await connection.fetchval("SELECT task_count FROM users WHERE id = 'alice'") == 1


async def test_a_repeat_while_the_first_is_in_progress_elsewhere_is_409(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """The repeat reaches another instance of the service while the first create waits with its
    key's lock: it is refused at once."""
    async with (
        _a_create_waiting_with_its_key(client, database_url) as (first, watcher),
        serving(database_url) as another_instance,
    ):
        assert await _advisory_locks(watcher) == 1
        repeat = await _post(another_instance, {"title": "Buy milk"})
        assert repeat.status_code == 409
        assert repeat.headers["retry-after"] == "1"
        assert repeat.json()["title"] == "Conflict"
        assert not first.done()
    assert (await first).status_code == 201  # the other write ended; the first create went on
    later = await _post(client, {"title": "Buy milk"})
    assert later.headers["idempotent-replayed"] == "true"
    assert await _count(database_url) == 2


async def test_a_repeat_to_the_same_instance_waits_its_turn_and_is_replayed(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """In one instance the user's creates take turns: the repeat waits behind the first create,
    holding no connection and no lock, and gets its answer."""
    async with _a_create_waiting_with_its_key(client, database_url) as (first, watcher):
        repeat = asyncio.create_task(_post(client, {"title": "Buy milk"}))
        await asyncio.sleep(0.3)  # time for the repeat to reach the database, were it to
        assert await _advisory_locks(watcher) == 1
        assert not repeat.done()
    assert (await first).status_code == 201
    replayed = await repeat
    assert replayed.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    assert await _count(database_url) == 2


async def test_100_concurrent_repeats_make_one_task(
    client: httpx.AsyncClient, database_url: str
) -> None:
    responses = await asyncio.gather(*(_post(client, {"title": "Buy milk"}) for _ in range(100)))
    outcomes = Counter(
        (response.status_code, response.headers.get("idempotent-replayed"))
        for response in responses
    )
    assert outcomes[(201, None)] == 1, outcomes
    assert set(outcomes) <= {(201, None), (201, "true"), (409, None)}, outcomes
    created = next(r for r in responses if "idempotent-replayed" not in r.headers and r.is_success)
    for response in responses:
        if response.status_code == 201:
            assert response.content == created.content
    assert await _count(database_url) == 1


@pytest.mark.parametrize("table", ["tasks", "idempotency_keys"])
async def test_the_task_and_its_key_are_written_together(
    client: httpx.AsyncClient, database_url: str, table: str
) -> None:
    """Either write failing leaves neither behind, and the client's retry then works."""
    async with connect(database_url) as connection:
        await connection.execute(
            """CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"""
        )
        await connection.execute(
            f"CREATE TRIGGER fail BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION fail()"
        )
    try:
        failed = await _post(client, {"title": "Buy milk"})
        assert failed.status_code == 500
        assert "disk full" not in failed.text
        assert await _count(database_url) == 0
        assert await _count(database_url, "idempotency_keys") == 0
    finally:
        async with connect(database_url) as connection:
            await connection.execute(f"DROP TRIGGER fail ON {table}; DROP FUNCTION fail()")
    retried = await _post(client, {"title": "Buy milk"})
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert await _count(database_url) == 1
    assert await _count(database_url, "idempotency_keys") == 1


async def test_a_replay_has_every_field_the_contract_has_now(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """An answer stored before the contract's Task gained a field (here: the record stripped of
    two) is replayed with that field, taken from the task as it is now; the fields it had stay as
    they were given."""
    first = await _post(client, {"title": "Buy milk"})
    task = first.json()
    renamed = await client.patch(first.headers["location"], json={"title": "Renamed since"})
    async with connect(database_url) as connection:
        await connection.execute(
            "UPDATE idempotency_keys SET body = (body::jsonb - 'updated_at' - 'completed_at')::text"
        )
    replay = await _post(client, {"title": "Buy milk"})
    assert replay.headers["idempotent-replayed"] == "true"
    answer = replay.json()
    assert list(answer) == list(task)  # every field, in the contract's order
    assert answer["title"] == "Buy milk"  # as it was given
    assert answer["updated_at"] == renamed.json()["updated_at"]  # as the task is now
    assert answer["completed_at"] is None
    await client.delete(first.headers["location"])
    gone = (await _post(client, {"title": "Buy milk"})).json()
    assert list(gone) == list(task)
    assert gone["updated_at"] is None  # the task is gone: nothing to take it from


async def test_a_user_holds_a_bounded_number_of_live_keys(database_url: str) -> None:
    """MAX_IDEMPOTENCY_KEYS_PER_USER: beyond it a new key is a 429 until the first expires; a
    repeat of a held key is still replayed, a create without a key still made, another user
    unaffected."""
    await truncate(database_url)
    settings = Settings(max_idempotency_keys_per_user=2, idempotency_ttl=2, _env_file=None)
    async with serving(database_url, settings) as client:
        for key in ("first", "second"):
            assert (await _post(client, {"title": key}, key=key)).status_code == 201
        refused = await _post(client, {"title": "third"}, key="third")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert "at most 2 live Idempotency-Keys" in refused.json()["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        assert await _count(database_url) == 2
        replayed = await _post(client, {"title": "first"}, key="first")
        assert replayed.headers["idempotent-replayed"] == "true"
        unkeyed = await client.post("/users/alice/tasks", json={"title": "no key"})
        assert unkeyed.status_code == 201
        assert (await _post(client, {"title": "bob's"}, key="third", user="bob")).status_code == 201
        await asyncio.sleep(2.1)  # the keys' lifetime
        assert (await _post(client, {"title": "third"}, key="third")).status_code == 201
