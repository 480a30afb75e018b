"""The AWS event stream encoding (``application/vnd.amazon.eventstream``), writing side.

A message is a prelude (total length u32, headers length u32, CRC32 of those eight
bytes), the headers (name length u8, name, value type u8, value -- a string is u16 length
then UTF-8), the payload, and a CRC32 of everything before it; all big-endian. botocore's
``botocore/eventstream.py`` parses it; REST-JSON event streams carry a blob
``eventpayload`` member as the raw payload and an exception event's members as JSON.
"""

from __future__ import annotations

import json
import struct
from binascii import crc32
from collections.abc import Mapping

CONTENT_TYPE = "application/vnd.amazon.eventstream"

_TRUE, _FALSE, _INT32, _INT64, _BYTES, _STRING = 0, 1, 4, 5, 6, 7
_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")


def _header(name: str, value: str | bytes | bool | int) -> bytes:
    encoded_name = name.encode("utf-8")
    if len(encoded_name) > 255:
        raise ValueError(f"event stream header name {name!r} is longer than 255 bytes")
    head = bytes((len(encoded_name),)) + encoded_name
    if isinstance(value, bool):
        return head + bytes((_TRUE if value else _FALSE,))
    if isinstance(value, int):
        if -(2 ** 31) <= value < 2 ** 31:
            return head + bytes((_INT32,)) + struct.pack(">i", value)
        return head + bytes((_INT64,)) + struct.pack(">q", value)
    kind = _BYTES if isinstance(value, bytes) else _STRING
    data = value if isinstance(value, bytes) else value.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError(f"event stream header {name!r}: the value is longer than 65535 bytes")
    return head + bytes((kind,)) + struct.pack(">H", len(data)) + data


def encode_message(headers: Mapping[str, str | bytes | bool | int], payload: bytes) -> bytes:
    """One event stream message with ``headers`` (in order) and ``payload``."""
    encoded_headers = b"".join(_header(name, value) for name, value in headers.items())
    prelude = _PRELUDE.pack(16 + len(encoded_headers) + len(payload), len(encoded_headers))
    prelude += _U32.pack(crc32(prelude) & 0xFFFFFFFF)
    message = b"".join((prelude, encoded_headers, payload))
    return message + _U32.pack(crc32(message) & 0xFFFFFFFF)


def event(event_type: str, payload: bytes,
          content_type: str = "application/octet-stream") -> bytes:
    """An ``event`` message, e.g. SageMaker Runtime's ``PayloadPart`` with its bytes."""
    return encode_message({":event-type": event_type, ":content-type": content_type,
                           ":message-type": "event"}, payload)


def exception(exception_type: str, members: Mapping[str, object]) -> bytes:
    """An ``exception`` message: a modelled error (``ModelStreamError``) with its members
    as the JSON payload; botocore raises it as ``EventStreamError`` with that code."""
    return encode_message({":exception-type": exception_type,
                           ":content-type": "application/json",
                           ":message-type": "exception"},
                          json.dumps(dict(members)).encode("utf-8"))
