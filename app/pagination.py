"""Keyset cursors: the (created_at, id) of the last task on a page, as 32 base64url characters.

Every string the contract allows for a cursor (32 characters from [A-Za-z0-9_-]) decodes to
24 bytes, so every such cursor is accepted; timestamps outside what Python can hold are clamped,
which keeps their place in the order.
"""

import base64
import struct
from datetime import UTC, datetime, timedelta
from uuid import UUID

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MICROS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def encode_cursor(created_at: datetime, task_id: UUID) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(struct.pack(">q", micros) + task_id.bytes).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    raw = base64.urlsafe_b64decode(cursor)
    (micros,) = struct.unpack(">q", raw[:8])
    micros = min(max(micros, _MIN_MICROS), _MAX_MICROS)
    return _EPOCH + timedelta(microseconds=micros), UUID(bytes=raw[8:])
