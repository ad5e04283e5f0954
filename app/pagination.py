"""Keyset cursors: where the next page starts, and which listing it belongs to.

A cursor holds the (created_at, id) of the last task on a page and two 3-byte checks, one of the
listing's order and filter, one of its search: 40 base64url characters. A cursor of another
listing is refused (422), rather than read as a position in this one.

Any other string the contract allows (32 or 40 characters from [A-Za-z0-9_-]) is read as a
position alone, as the 32-character cursors of contract 1.x and 2.0 were: it names no listing
that it could be confused with. Timestamps outside what Python can hold are clamped, which keeps
their place in the order.
"""

import base64
import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.problems import CursorOfAnotherListing

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MICROS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_POSITION = 24  # bytes: microseconds since the epoch, and the task's id


@dataclass(frozen=True, slots=True)
class Listing:
    """What a page belongs to: its order, its filter and its search."""

    newest_first: bool = False
    completed: bool | None = None
    search: str | None = None


_LISTINGS = [
    Listing(newest_first, completed)
    for newest_first in (False, True)
    for completed in (None, True, False)
]


def _check(position: bytes, *parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode() + position, digest_size=3).digest()


def _checks(position: bytes, listing: Listing) -> tuple[bytes, bytes]:
    return (
        _check(position, listing.newest_first, listing.completed),
        _check(position, listing.search),
    )


def encode_cursor(created_at: datetime, task_id: UUID, listing: Listing) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    position = struct.pack(">q", micros) + task_id.bytes
    kind, search = _checks(position, listing)
    return base64.urlsafe_b64encode(position + kind + search).decode()


def decode_cursor(cursor: str, listing: Listing) -> tuple[datetime, UUID]:
    raw = base64.urlsafe_b64decode(cursor)
    position, checks = raw[:_POSITION], raw[_POSITION:]
    if checks and checks != b"".join(_checks(position, listing)):
        kind = checks[:3]
        if any(kind == _checks(position, other)[0] for other in _LISTINGS):
            raise CursorOfAnotherListing
    (micros,) = struct.unpack(">q", position[:8])
    micros = min(max(micros, _MIN_MICROS), _MAX_MICROS)
    return _EPOCH + timedelta(microseconds=micros), UUID(bytes=position[8:])
