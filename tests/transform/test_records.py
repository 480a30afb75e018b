"""The pieces a transform job cuts and processes records with: the JSONPath subset
(inclusive slices), record splitting and packing, and the data-processing filters/join."""

from __future__ import annotations

import gzip
import json
import struct

import pytest

from openmaker.formats.recordio import frame_record
from openmaker.transform import jsonpath, splitting
from openmaker.transform.data_processing import DataProcessor, FilterError, split_answer


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("$", [1, 2], [1, 2]),
    ("$[1:4]", list("abcdef"), list("bcde")),  # the end index is included
    ("$[:5]", list("abcdefgh"), list("abcdef")),
    ("$[2:]", list("abcd"), list("cd")),
    ("$[-1]", [1, 2, 3], 3),
    ("$[0,-1]", [1, 2, 3], [1, 3]),
    ("$.a.b", {"a": {"b": 5}}, 5),
    ("$.features[1]", {"features": [7, 8]}, 8),
    ("$['id','SageMakerOutput']", {"id": 1, "x": 2, "SageMakerOutput": 3},
     {"id": 1, "SageMakerOutput": 3}),
    ("$.*", {"a": 1, "b": 2}, [1, 2]),
    ("$[*]", [4, 5], [4, 5]),
    ("$[\"a\"]", {"a": 1}, 1),
])
def test_the_documented_jsonpath_subset_selects_as_sagemaker_does(path, value, expected):
    assert jsonpath.parse(path).select(value) == expected


@pytest.mark.parametrize("path", ["a", "$[1:", "$..a", "$[a]", "$.", "$['a'.b]", "$" + "x" * 63])
def test_paths_outside_the_subset_are_refused(path):
    with pytest.raises(jsonpath.JsonPathError):
        jsonpath.parse(path)


def test_a_path_that_matches_nothing_raises_no_match():
    with pytest.raises(jsonpath.NoMatch):
        jsonpath.parse("$.missing").select({"a": 1})
    with pytest.raises(jsonpath.NoMatch):
        jsonpath.parse("$[5]").select([1])


def test_lines_are_numbered_from_one_and_blank_lines_skipped():
    records = list(splitting.iter_records([b"a\n\nb", b"c\r\nd"], "Line"))
    assert records == [(1, b"a"), (3, b"bc"), (4, b"d")]


def test_record_io_keeps_frames_and_multi_part_records_whole():
    magic = struct.pack("<I", splitting.RECORDIO_MAGIC)
    # a payload holding the magic at an aligned offset is framed as several parts
    parts = frame_record(b"abcd" + magic + b"efgh", split_on_magic=True)
    data = frame_record(b"xyz") + parts
    records = list(splitting.iter_records([data[:5], data[5:]], "RecordIO"))
    assert [index for index, _ in records] == [1, 2]
    assert records[0][1] == frame_record(b"xyz") and records[1][1] == parts
    stripped = list(splitting.iter_records([data], "RecordIO", strip_padding=True))
    assert stripped[0][1] == frame_record(b"xyz")[:-1]
    with pytest.raises(splitting.RecordError, match="record 1 .*RecordIO magic"):
        list(splitting.iter_records([b"not recordio at all"], "RecordIO"))


def test_tfrecords_are_cut_at_their_length_headers():
    def tfrecord(data: bytes) -> bytes:
        return struct.pack("<QI", len(data), 0) + data + b"\0\0\0\0"

    data = tfrecord(b"one") + tfrecord(b"three")
    assert [r for _, r in splitting.iter_records([data], "TFRecord")] == \
        [tfrecord(b"one"), tfrecord(b"three")]
    with pytest.raises(splitting.RecordError, match="record 2 .*cut short"):
        list(splitting.iter_records([data[:-3]], "TFRecord"))


def test_multi_record_packs_up_to_the_limit_and_single_record_sends_each():
    records = [(i, b"x" * 4) for i in range(1, 6)]
    packed = list(splitting.pack(records, split_type="Line", strategy="MultiRecord", limit=10))
    assert [(p.first, p.count, p.body) for p in packed] == [
        (1, 2, b"xxxx\nxxxx\n"), (3, 2, b"xxxx\nxxxx\n"), (5, 1, b"xxxx\n")]
    single = list(splitting.pack(records, split_type="Line", strategy="SingleRecord", limit=10))
    assert [p.body for p in single] == [b"xxxx"] * 5
    with pytest.raises(splitting.RecordError, match="line 2 is 9 bytes"):
        list(splitting.pack([(1, b"a"), (2, b"b" * 8)], split_type="Line",
                            strategy="MultiRecord", limit=5))


def test_line_batches_cut_the_stream_at_newlines_and_count_lines():
    data = b"".join(b"%d\n" % i for i in range(100))
    batches = list(splitting.line_batches([data[:7], data[7:]], limit=50))
    assert b"".join(b.body for b in batches) == data
    assert all(len(b.body) <= 50 and b.body.endswith(b"\n") for b in batches)
    assert [b.first for b in batches] == [1] + [sum(x.count for x in batches[:i]) + 1
                                                for i in range(1, len(batches))]
    with pytest.raises(splitting.RecordError, match="line 2 "):
        list(splitting.line_batches([b"ok\n" + b"y" * 60 + b"\n"], limit=50))


def test_gzip_objects_are_decompressed_and_bad_gzip_named():
    data = gzip.compress(b"a\nb\n") + gzip.compress(b"c\n")
    assert b"".join(splitting.decompressed([data[:9], data[9:]], "Gzip")) == b"a\nb\nc\n"
    with pytest.raises(splitting.RecordError, match="not gzip"):
        b"".join(splitting.decompressed([b"plain text"], "Gzip"))


def test_csv_join_puts_input_columns_then_output_columns():
    processor = DataProcessor({"InputFilter": "$[1:]", "JoinSource": "Input",
                               "OutputFilter": "$[0,-1]"}, "text/csv", "text/csv")
    assert processor.prepare(b"id7,1.5,2", "line 1") == b"1.5,2"
    assert processor.finish(b"id7,1.5,2", b"0.25\n", "text/csv", "line 1") == b"id7,0.25"


def test_json_join_adds_sagemaker_output_or_wraps_non_objects():
    processor = DataProcessor({"JoinSource": "Input"}, "application/json", "application/json")
    assert json.loads(processor.finish(b'{"a": 1}', b'{"score": 2}', None, "r")) == \
        {"a": 1, "SageMakerOutput": {"score": 2}}
    assert json.loads(processor.finish(b"[1, 2]", b"0.5", None, "r")) == \
        {"SageMakerInput": [1, 2], "SageMakerOutput": 0.5}


def test_a_filter_matching_nothing_names_the_filter_and_the_record():
    processor = DataProcessor({"InputFilter": "$[3]"}, "text/csv", None)
    with pytest.raises(FilterError, match=r"InputFilter '\$\[3\]' matches nothing in line 4"):
        processor.prepare(b"1,2", "line 4 of s3://b/k")


def test_multi_record_answers_are_split_per_record():
    assert split_answer(b"1\n2\n", 2, "lines 1-2") == [b"1", b"2"]
    assert split_answer(b'{"predictions": [{"score": 1}, {"score": 2}]}', 2, "x") == \
        [b'{"score":1}', b'{"score":2}']
    with pytest.raises(FilterError, match="3 records"):
        split_answer(b"1\n2\n", 3, "lines 1-3")
