"""Cutting an input object into the requests a batch transform job sends.

``SplitType`` says where records end: ``None`` (the whole object is one record), ``Line``
(newlines; empty lines are skipped), ``RecordIO`` (MXNet RecordIO frames, see
:mod:`openmaker.formats.recordio`; a record split over several frames stays whole) and
``TFRecord`` (length, CRC, data, CRC). ``BatchStrategy`` ``SingleRecord`` sends each record
alone; ``MultiRecord`` packs as many consecutive records of one object as fit in
``MaxPayloadInMB`` (``0``: no limit). A record bigger than the limit raises
:class:`RecordError` naming the object and the record's position (1-based line number
for ``Line``, record index otherwise). Objects are streamed in chunks; ``Gzip`` objects
are decompressed on the way.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

RECORDIO_MAGIC = 0xCED7230A
_RECORDIO_HEADER = struct.Struct("<II")
_RECORDIO_LENGTH_MASK = (1 << 29) - 1
_TFRECORD_HEADER = struct.Struct("<QI")
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class RecordError(ValueError):
    """A record cannot be cut out or sent (too large, bad framing); says where."""


@dataclass
class Payload:
    """One request: its body, the position of its first record and how many it holds;
    when data processing needs them one by one, ``records`` (each record as sent),
    ``positions`` (each one's position) and ``inputs`` (each one as read, for a join)."""

    body: bytes
    first: int
    count: int
    records: list[bytes] | None = None
    positions: list[int] | None = None
    inputs: list[bytes] | None = None

    @property
    def last(self) -> int:
        return self.positions[-1] if self.positions else self.first + self.count - 1


def position_name(split_type: str, position: int) -> str:
    return f"line {position}" if split_type == "Line" else f"record {position}"


def decompressed(chunks: Iterable[bytes], compression: str) -> Iterator[bytes]:
    """The object's bytes, gunzipped when ``compression`` is ``Gzip`` (concatenated gzip
    members too)."""
    if compression != "Gzip":
        yield from chunks
        return
    inflater = zlib.decompressobj(_GZIP_WBITS)
    for chunk in chunks:
        while chunk:
            try:
                yield inflater.decompress(chunk)
            except zlib.error as error:
                raise RecordError(f"is not gzip data (CompressionType Gzip): {error}") from None
            if inflater.eof:
                chunk = inflater.unused_data
                inflater = zlib.decompressobj(_GZIP_WBITS)
            else:
                chunk = b""
    yield inflater.flush()


def iter_records(chunks: Iterable[bytes], split_type: str, *, strip_padding: bool = False
                 ) -> Iterator[tuple[int, bytes]]:
    """``(position, record)`` pairs of the object, in order."""
    if split_type == "None":
        data = b"".join(chunks)
        if data:  # an empty object has no record: its .out is empty
            yield 1, data
    elif split_type == "Line":
        yield from _lines(chunks)
    elif split_type == "RecordIO":
        yield from _recordio(_Buffer(chunks), strip_padding)
    elif split_type == "TFRecord":
        yield from _tfrecords(_Buffer(chunks))
    else:
        raise ValueError(f"SplitType {split_type!r}")


def _lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    number = 0
    rest = b""
    for chunk in chunks:
        if not chunk:
            continue
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for line in whole:
            number += 1
            line = line.rstrip(b"\r")
            if line.strip():
                yield number, line
    if rest.strip():
        yield number + 1, rest.rstrip(b"\r")


class _Buffer:
    """Bytes from a chunk iterator, read by exact lengths."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._data = b""
        self._offset = 0
        self.consumed = 0  # bytes handed out so far

    def read(self, size: int) -> bytes:
        """``size`` bytes, fewer only at the end of the object."""
        while len(self._data) - self._offset < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._data = self._data[self._offset:] + chunk
            self._offset = 0
        piece = self._data[self._offset:self._offset + size]
        self._offset += len(piece)
        self.consumed += len(piece)
        return piece


def _recordio(buffer: _Buffer, strip_padding: bool) -> Iterator[tuple[int, bytes]]:
    index = 0
    while True:
        start = buffer.consumed
        header = buffer.read(_RECORDIO_HEADER.size)
        if not header:
            return
        index += 1
        frames: list[bytes] = []
        while True:
            if len(header) < _RECORDIO_HEADER.size:
                raise RecordError(f"record {index} is cut short at byte {start} (an incomplete "
                                  "RecordIO header)")
            magic, word = _RECORDIO_HEADER.unpack(header)
            if magic != RECORDIO_MAGIC:
                raise RecordError(f"record {index} at byte {start} does not start with the "
                                  f"RecordIO magic 0x{RECORDIO_MAGIC:08X} (found "
                                  f"0x{magic:08X}); is SplitType RecordIO right?")
            length, flag = word & _RECORDIO_LENGTH_MASK, word >> 29
            padding = -length % 4
            payload = buffer.read(length + padding)
            if len(payload) < length:
                raise RecordError(f"record {index} at byte {start} is cut short: its header "
                                  f"says {length} bytes")
            frames.append(header + payload)
            if flag in (0, 3):
                break
            header = buffer.read(_RECORDIO_HEADER.size)
        record = b"".join(frames)
        if strip_padding and padding:
            record = record[:-padding]
        yield index, record


def _tfrecords(buffer: _Buffer) -> Iterator[tuple[int, bytes]]:
    index = 0
    while True:
        start = buffer.consumed
        header = buffer.read(_TFRECORD_HEADER.size)
        if not header:
            return
        index += 1
        if len(header) < _TFRECORD_HEADER.size:
            raise RecordError(f"record {index} is cut short at byte {start} (an incomplete "
                              "TFRecord header)")
        length, _ = _TFRECORD_HEADER.unpack(header)
        rest = buffer.read(length + 4)
        if len(rest) < length + 4:
            raise RecordError(f"record {index} at byte {start} is cut short: its header says "
                              f"{length} bytes; is SplitType TFRecord right?")
        yield index, header + rest


def pack(records: Iterable[tuple[int, bytes]], *, split_type: str, strategy: str,
         limit: int, keep_records: bool = False) -> Iterator[Payload]:
    """Requests from ``(position, record)`` pairs: one per record (``SingleRecord``), or
    consecutive records up to ``limit`` bytes (``MultiRecord``; ``limit`` 0: no limit).
    Line records are sent with a newline after each."""
    line = split_type == "Line"
    batch: list[bytes] = []
    positions: list[int] = []
    size = 0
    for position, record in records:
        record_size = len(record) + (1 if line else 0)
        if limit and record_size > limit:
            raise RecordError(f"{position_name(split_type, position)} is {record_size} bytes, "
                              f"more than MaxPayloadInMB allows ({limit} bytes); raise "
                              "MaxPayloadInMB or split the record")
        if strategy == "SingleRecord" or split_type == "None":
            yield Payload(record, position, 1, *(([record], [position]) if keep_records
                                                 else ()))
            continue
        if batch and limit and size + record_size > limit:
            yield _joined(batch, positions, line, keep_records)
            batch, positions, size = [], [], 0
        batch.append(record)
        positions.append(position)
        size += record_size
    if batch:
        yield _joined(batch, positions, line, keep_records)


def _joined(batch: list[bytes], positions: list[int], line: bool,
            keep_records: bool) -> Payload:
    body = b"\n".join(batch) + b"\n" if line else b"".join(batch)
    if not keep_records:
        return Payload(body, positions[0], len(batch))
    return Payload(body, positions[0], len(batch), batch, positions)


def line_batches(chunks: Iterable[bytes], limit: int) -> Iterator[Payload]:
    """``Line`` + ``MultiRecord`` without data processing: requests cut from the stream at
    the last newline that fits in ``limit`` bytes, without splitting it into lines first
    (``count`` is the number of newlines in the request, blank lines included). Chunks are
    joined once per request: batch transform reads whole files through here."""
    pending: list[bytes] = []
    size = 0
    line = 1
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if not limit or size <= limit:
            continue
        data = b"".join(pending)
        start = 0
        while len(data) - start > limit:
            cut = data.rfind(b"\n", start, start + limit)
            if cut < 0:
                raise RecordError(f"line {line} is more than MaxPayloadInMB allows ({limit} "
                                  "bytes); raise MaxPayloadInMB or split the record")
            body = data[start:cut + 1]
            count = body.count(b"\n")
            yield Payload(body, line, count)
            line += count
            start = cut + 1
        pending = [data[start:]]
        size = len(pending[0])
    body = b"".join(pending)
    if body.strip():
        yield Payload(body, line, body.count(b"\n") + (0 if body.endswith(b"\n") else 1))
