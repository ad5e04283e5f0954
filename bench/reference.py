"""The floor to measure against: bare ASGI over an asyncpg pool with orjson, no validation at all.

Serves only what the benchmark compares: get one task, and list a user's tasks.
Run: DATABASE_URL=… uvicorn bench.reference:app --loop uvloop --http httptools
"""

import os
from typing import Any

import asyncpg
import orjson

COLUMNS = "id, user_id, title, description, is_completed, completed_at, created_at, updated_at"
GET = f"SELECT {COLUMNS} FROM tasks WHERE user_id = $1 AND id = $2"
LIST = f"SELECT {COLUMNS} FROM tasks WHERE user_id = $1 ORDER BY created_at, id LIMIT $2"

pool: Any = None


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Any, receive: Any, send: Any) -> None:
    global pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                size = int(os.environ.get("DB_POOL_SIZE", "8"))  # the service's default
                pool = await asyncpg.create_pool(
                    os.environ["DATABASE_URL"], min_size=size, max_size=size
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    parts = scope["path"].strip("/").split("/")
    if len(parts) == 4:
        row = await pool.fetchrow(GET, parts[1], parts[3])
        if row is None:
            await _respond(send, 404, b"{}")
            return
        await _respond(send, 200, orjson.dumps(dict(row), default=str))
        return
    limit = 100
    for pair in scope["query_string"].decode().split("&"):
        if pair.startswith("limit="):
            limit = int(pair[6:])
    rows = await pool.fetch(LIST, parts[1], limit)
    await _respond(send, 200, orjson.dumps([dict(row) for row in rows], default=str))
