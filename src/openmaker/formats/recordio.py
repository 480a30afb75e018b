"""MXNet/dmlc RecordIO framing, as SageMaker uses it for RecordIO-protobuf and image RecordIO.

Each record is the little-endian magic ``0xCED7230A``, a length word whose low 29 bits are the
payload length and whose top 3 bits are the continuation flag (0 whole record, 1 first part,
2 middle part, 3 last part), the payload, then zero padding to a 4-byte boundary. dmlc splits a
payload wherever the magic appears at a 4-byte-aligned offset and drops it; readers re-insert it
between the parts.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import IO

from openmaker.formats._sources import (
    DEFAULT_CHUNK_SIZE,
    Destination,
    Source,
    iter_chunks,
    open_destination,
    source_name,
)

RECORDIO_MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", RECORDIO_MAGIC)
MAX_RECORD_LENGTH = (1 << 29) - 1
_LENGTH_MASK = MAX_RECORD_LENGTH
_HEADER = struct.Struct("<II")
_PADDING = (b"", b"\0", b"\0\0", b"\0\0\0")

FLAG_WHOLE, FLAG_FIRST, FLAG_MIDDLE, FLAG_LAST = 0, 1, 2, 3


class RecordIOError(ValueError):
    """A RecordIO stream is malformed (bad magic, truncated record, broken part sequence)."""


def _part(flag: int, payload: bytes | memoryview) -> list[bytes | memoryview]:
    length = len(payload)
    if length > MAX_RECORD_LENGTH:
        raise RecordIOError(f"a RecordIO record holds at most {MAX_RECORD_LENGTH} bytes, "
                            f"got {length}")
    return [_HEADER.pack(RECORDIO_MAGIC, (flag << 29) | length), payload]


def frame_record(payload: bytes, *, split_on_magic: bool = False) -> bytes:
    """Frame one payload as a RecordIO record.

    The default writes one whole record, byte-identical to the SageMaker SDK's
    ``_write_recordio``; ``split_on_magic=True`` writes dmlc's multi-part form, which is what
    MXNet's ``MXRecordIO`` writes when the magic occurs inside the payload.
    """
    view = memoryview(payload).cast("B")
    length = len(view)
    pieces: list[bytes | memoryview] = []
    start = 0
    if split_on_magic and length >= 4:
        for offset in _aligned_magic_offsets(bytes(view[: length & ~3])):
            pieces += _part(FLAG_FIRST if start == 0 else FLAG_MIDDLE, view[start:offset])
            start = offset + 4
    pieces += _part(FLAG_LAST if start else FLAG_WHOLE, view[start:])
    pieces.append(_PADDING[-length % 4])
    return b"".join(pieces)


def _aligned_magic_offsets(data: bytes) -> list[int]:
    offsets = []
    position = data.find(MAGIC_BYTES)
    while position >= 0:
        if position % 4 == 0:
            offsets.append(position)
            position = data.find(MAGIC_BYTES, position + 4)
        else:
            position = data.find(MAGIC_BYTES, position + 1)
    return offsets


def write_record(file: IO[bytes], payload: bytes, *, split_on_magic: bool = False) -> int:
    """Write one framed record to a binary file object; returns the bytes written."""
    framed = frame_record(payload, split_on_magic=split_on_magic)
    file.write(framed)
    return len(framed)


def write_records(destination: Destination, payloads: Iterable[bytes], *,
                  split_on_magic: bool = False) -> int:
    """Write every payload as a framed record to a path or binary file; returns the count."""
    count = 0
    with open_destination(destination) as file:
        batch: list[bytes] = []
        for payload in payloads:
            batch.append(frame_record(payload, split_on_magic=split_on_magic))
            count += 1
            if len(batch) >= 1024:
                file.write(b"".join(batch))
                batch.clear()
        if batch:
            file.write(b"".join(batch))
    return count


def iter_records(source: Source, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Yield each record's payload from a RecordIO source, streaming.

    ``source`` is a path, bytes, a binary file object or an iterable of byte chunks; records may
    straddle chunk boundaries. Multi-part records are joined with the magic re-inserted. A
    missing final padding is tolerated; anything else malformed raises ``RecordIOError`` naming
    the byte offset.
    """
    name = source_name(source)
    buffer = bytearray()
    position = 0  # next unread byte in buffer
    consumed = 0  # stream offset of buffer[0]
    parts: list[bytes] = []
    parts_offset = 0
    for chunk in iter_chunks(source, chunk_size):
        if position:
            del buffer[:position]
            consumed += position
            position = 0
        buffer += chunk
        while len(buffer) - position >= 8:
            magic, word = _HEADER.unpack_from(buffer, position)
            offset = consumed + position
            if magic != RECORDIO_MAGIC:
                raise RecordIOError(
                    f"{name}: bad RecordIO magic 0x{magic:08x} at byte {offset} (expected "
                    f"0x{RECORDIO_MAGIC:08x}); the data is not RecordIO or is corrupted")
            length = word & _LENGTH_MASK
            padded = (length + 3) & ~3
            if len(buffer) - position < 8 + padded:
                break
            payload = bytes(buffer[position + 8 : position + 8 + length])
            position += 8 + padded
            record = _assemble(name, offset, word >> 29, payload, parts, parts_offset)
            if parts and len(parts) == 1:
                parts_offset = offset
            if record is not None:
                yield record
    remaining = len(buffer) - position
    if remaining:
        offset = consumed + position
        if remaining < 8:
            raise RecordIOError(f"{name}: truncated RecordIO header at byte {offset} "
                                f"({remaining} of 8 bytes)")
        magic, word = _HEADER.unpack_from(buffer, position)
        length = word & _LENGTH_MASK
        if remaining - 8 < length:
            raise RecordIOError(f"{name}: truncated RecordIO record at byte {offset}: the header "
                                f"says {length} bytes, {remaining - 8} remain")
        # The record is whole but its final padding is missing.
        record = _assemble(name, offset, word >> 29, bytes(buffer[position + 8 : position + 8
                                                                   + length]), parts, parts_offset)
        if record is not None:
            yield record
    if parts:
        raise RecordIOError(f"{name}: the multi-part RecordIO record starting at byte "
                            f"{parts_offset} has no last part")


def _assemble(name: str, offset: int, flag: int, payload: bytes, parts: list[bytes],
              parts_offset: int) -> bytes | None:
    """Fold one part into ``parts``; return the whole record once it is complete."""
    if flag == FLAG_WHOLE:
        if parts:
            raise RecordIOError(f"{name}: a whole RecordIO record at byte {offset} interrupts the "
                                f"multi-part record starting at byte {parts_offset}")
        return payload
    if flag == FLAG_FIRST:
        if parts:
            raise RecordIOError(f"{name}: a new multi-part RecordIO record at byte {offset} "
                                f"interrupts the one starting at byte {parts_offset}")
        parts.append(payload)
        return None
    if flag in (FLAG_MIDDLE, FLAG_LAST):
        if not parts:
            raise RecordIOError(f"{name}: RecordIO continuation part at byte {offset} "
                                f"(flag {flag}) without a first part")
        parts.append(MAGIC_BYTES)
        parts.append(payload)
        if flag == FLAG_MIDDLE:
            return None
        record = b"".join(parts)
        parts.clear()
        return record
    raise RecordIOError(f"{name}: invalid RecordIO continuation flag {flag} at byte {offset}")


def read_records(source: Source) -> list[bytes]:
    """Every record payload of a RecordIO source, as a list."""
    return list(iter_records(source))
