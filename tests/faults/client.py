"""A raw HTTP/1.1 client, one connection per request, that tells a refused connection from an
accepted one that ended without an answer, and concurrent clients built on it."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

ANSWER_WITHIN = 60.0  # seconds: far beyond every bound under test; only a hang reaches it


class Refused(Exception):
    """No connection was made, so no request was sent: it was refused, or reset during the
    handshake (when the listening socket closes as the connection arrives)."""


class Unanswered(Exception):
    """The connection was accepted, then reset or closed before any answer."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    started: float
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
) -> Answer:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (ConnectionRefusedError, ConnectionResetError) as error:
        raise Refused from error
    payload = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    head += [f"Content-Length: {len(payload)}"]
    if body is not None:
        head.append("Content-Type: application/json")
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        raw = await asyncio.wait_for(reader.read(), ANSWER_WITHIN)
    except (ConnectionError, OSError) as error:
        raise Unanswered(type(error).__name__) from error
    finally:
        writer.close()
    if not raw:
        raise Unanswered("closed without an answer")
    head_bytes, _, content = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in header_lines)
    return Answer(
        status=int(status_line.split()[1]),
        headers={name.lower(): value.strip() for name, value in fields.items()},
        body=content,
        started=started,
        elapsed=time.monotonic() - started,
    )


@dataclass
class Outcomes:
    answers: list[Answer] = field(default_factory=list)
    refused: int = 0
    unanswered: list[str] = field(default_factory=list)

    def statuses(self) -> set[int]:
        return {answer.status for answer in self.answers}


async def clients(
    count: int, request: Callable[[int], Awaitable[Answer]], stop: asyncio.Event
) -> Outcomes:
    """`count` clients, each sending requests one after another until `stop` is set."""
    outcomes = Outcomes()

    async def client(number: int) -> None:
        while not stop.is_set():
            try:
                outcomes.answers.append(await request(number))
            except Refused:
                outcomes.refused += 1
                await asyncio.sleep(0.05)
            except Unanswered as error:
                outcomes.unanswered.append(str(error))

    await asyncio.gather(*(client(number) for number in range(count)))
    return outcomes
