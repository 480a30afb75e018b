"""RecordIO framing: layout, padding, streaming across chunk boundaries, multi-part records."""

from __future__ import annotations

import io
import struct

import pytest

from openmaker.formats import recordio
from openmaker.formats.recordio import MAGIC_BYTES, RecordIOError, frame_record, iter_records

PAYLOADS = [b"", b"a", b"ab", b"abc", b"abcd", b"abcde", bytes(range(256)) * 3 + b"xy"]


def test_frame_layout_is_magic_length_payload_padding():
    framed = frame_record(b"hello")
    assert framed[:4] == bytes.fromhex("0a23d7ce")
    assert struct.unpack("<I", framed[4:8]) == (5,)
    assert framed[8:13] == b"hello"
    assert framed[13:] == b"\0\0\0"
    assert len(framed) % 4 == 0


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: f"{len(p)}B")
def test_round_trip_for_sizes_not_multiple_of_four(payload):
    stream = frame_record(payload) + frame_record(b"next")
    assert list(iter_records(stream)) == [payload, b"next"]


def test_stream_split_at_every_offset_reads_the_same_records():
    stream = b"".join(frame_record(p) for p in PAYLOADS[:6])
    for cut in range(len(stream) + 1):
        chunks = [stream[:cut], stream[cut:]]
        assert list(iter_records(chunks)) == PAYLOADS[:6], cut


def test_stream_of_one_byte_chunks_and_file_objects():
    stream = b"".join(frame_record(p) for p in PAYLOADS)
    assert list(iter_records(stream[i : i + 1] for i in range(len(stream)))) == PAYLOADS
    assert list(iter_records(io.BytesIO(stream), chunk_size=3)) == PAYLOADS


def test_path_source_and_write_records(tmp_path):
    path = tmp_path / "data.rec"
    assert recordio.write_records(path, PAYLOADS) == len(PAYLOADS)
    assert recordio.read_records(path) == PAYLOADS
    assert recordio.read_records(str(path)) == PAYLOADS


def test_corrupted_magic_names_the_byte_offset():
    stream = bytearray(frame_record(b"abcd") + frame_record(b"efgh"))
    stream[12] ^= 0xFF
    with pytest.raises(RecordIOError, match=r"bad RecordIO magic .* at byte 12"):
        list(iter_records(bytes(stream)))


def test_not_recordio_is_a_clear_error():
    with pytest.raises(RecordIOError, match="not RecordIO"):
        list(iter_records(b"label,f1,f2\n1,2,3\n"))


def test_truncated_record_and_header_are_errors():
    framed = frame_record(b"abcdefgh")
    with pytest.raises(RecordIOError, match="truncated RecordIO record at byte 0"):
        list(iter_records(framed[:12]))
    with pytest.raises(RecordIOError, match="truncated RecordIO header"):
        list(iter_records(framed + framed[:5]))


def test_missing_final_padding_is_tolerated():
    framed = frame_record(b"abcde")
    assert list(iter_records(framed[:-3])) == [b"abcde"]


@pytest.mark.parametrize("payload", [
    MAGIC_BYTES,
    b"abcd" + MAGIC_BYTES + b"efg",
    MAGIC_BYTES + MAGIC_BYTES + b"z",
    b"ab" + MAGIC_BYTES + b"cd",  # unaligned: not split
    b"wxyz" + MAGIC_BYTES,
], ids=["only-magic", "middle", "two-in-a-row", "unaligned", "at-end"])
def test_split_on_magic_writes_dmlc_parts_that_read_back_whole(payload):
    framed = frame_record(payload, split_on_magic=True)
    assert len(framed) % 4 == 0
    for cut in range(len(framed) + 1):
        assert list(iter_records([framed[:cut], framed[cut:]])) == [payload]
    first_flag = struct.unpack_from("<I", framed, 4)[0] >> 29
    assert first_flag == (0 if payload == b"ab" + MAGIC_BYTES + b"cd" else 1)


def test_multi_part_record_from_explicit_parts():
    def part(flag, data):
        return struct.pack("<II", recordio.RECORDIO_MAGIC, flag << 29 | len(data)) + data + (
            b"\0" * (-len(data) % 4))

    stream = part(1, b"abcd") + part(2, b"") + part(3, b"xyz") + part(0, b"q")
    assert list(iter_records(stream)) == [b"abcd" + MAGIC_BYTES + MAGIC_BYTES + b"xyz", b"q"]
    with pytest.raises(RecordIOError, match="without a first part"):
        list(iter_records(part(3, b"abcd")))
    with pytest.raises(RecordIOError, match="has no last part"):
        list(iter_records(part(1, b"abcd")))
    with pytest.raises(RecordIOError, match="interrupts"):
        list(iter_records(part(1, b"abcd") + part(0, b"abcd")))
    with pytest.raises(RecordIOError, match="invalid RecordIO continuation flag 5"):
        list(iter_records(part(5, b"abcd")))


def test_oversized_record_is_refused():
    class Huge:
        def __len__(self):
            return 1 << 29

    with pytest.raises(RecordIOError, match="at most"):
        recordio._part(0, Huge())  # type: ignore[arg-type]
